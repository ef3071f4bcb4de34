"""The database dependency and the column types every service uses.

Each service owns one database, named by ``DB_URIS.<service name>`` in
config.yaml: an SQLite file for a local run, PostgreSQL in production.
"""
import logging
import os
import time
from datetime import datetime, timezone
from decimal import Decimal

import nameko_sqlalchemy
from nameko.constants import DEFAULT_MAX_WORKERS, MAX_WORKERS_CONFIG_KEY
from nameko_sqlalchemy.database import DatabaseWrapper, Session
from sqlalchemy import BigInteger, DateTime, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator

from common.config import database_uri
from common.data import pg
from common.schemas import CENT

log = logging.getLogger(__name__)


def utcnow():
    return datetime.now(timezone.utc)


def create_db_engine(uri, workers=5):
    """An engine for ``uri`` tuned for eventlet workers.

    SQLite serialises writers. Its busy handler sleeps in C, which under
    eventlet blocks the very worker that holds the lock, so each service
    process shares one connection and greenlets queue for it in the pool.
    psycopg2 yields to eventlet on its own (nameko's monkey patch); plain
    ``postgresql://`` means psycopg2 here, not SQLAlchemy 2.1's psycopg 3,
    through common.data.pg's dialect, which sends a transaction's ``BEGIN`` with
    its first statement rather than in a round trip of its own.

    The pool keeps a connection open for each of ``workers`` (the service's
    ``max_workers``) plus the outbox relay: a pool smaller than the workers
    that use it at once closes its overflow connections as they come back,
    and under load opened a new PostgreSQL connection (a server process)
    for many transactions.
    """
    url = make_url(uri)
    if url.drivername in ("postgresql", "postgresql+psycopg2"):
        url = url.set(drivername=f"postgresql+{pg.DRIVER}")
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        engine = create_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=30,
            connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
    else:
        engine = create_engine(url, pool_size=workers + 1, max_overflow=5)
        event.listen(engine, "connect", _note_checkin)
        event.listen(engine, "checkin", _note_checkin)
        event.listen(engine, "checkout", _ping_if_idle)
    event.listen(engine, "commit", _note_commit_sent)
    return engine


# A connection back in use within this time is taken to be alive.
IDLE_PING_SECONDS = 5.0


def _note_checkin(dbapi_connection, connection_record):
    connection_record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection, connection_record, connection_proxy):
    """Pessimistic disconnect handling, for connections that sat idle only.

    ``pool_pre_ping`` pings on every checkout: a round trip per transaction,
    5% of a service's CPU under load. A connection used moments ago rarely
    died since; if it did (the database restarted), the statement fails
    with a disconnect error, and SQLAlchemy then drops every connection of
    the pool, so the next transactions start on new ones."""
    idle = time.monotonic() - connection_record.info.get("checked_in_at", float("-inf"))
    if idle < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as exc:
        # the pool replaces the connection and checks out a new one
        raise DisconnectionError(f"an idle connection is gone: {exc}") from exc


# Where a connection's transaction belongs: the ``info`` of the session
# that began it, for _note_commit_sent.
SESSION_INFO = "shop.session_info"
COMMIT_SENT = "shop.commit_sent"


def _note_session(session, transaction, connection):
    connection.info[SESSION_INFO] = session.info


def _note_commit_sent(connection):
    """Marks the session whose COMMIT is about to be sent: from here on,
    whether its transaction committed is not known if the connection fails.
    (A statement run in the AUTOCOMMIT isolation level commits by itself;
    such a connection carries reads only, see :func:`read_alone`.)"""
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    session_info = connection.info.get(SESSION_INFO)
    if session_info is not None:
        session_info[COMMIT_SENT] = True


def is_database_unavailable(exc):
    """Whether ``exc`` says the database cannot be reached (down, restarting,
    connection dropped), rather than that a statement was wrong."""
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError))


def deferred(statement):
    """``statement`` (an INSERT, UPDATE or DELETE whose answer nobody reads),
    sent on PostgreSQL in one message with the next statement of its
    transaction, or with its COMMIT, instead of in a round trip of its own
    (common.data.pg). Its error, if it fails, is raised by the statement or the
    commit that carried it. Elsewhere (SQLite) it runs when executed."""
    return statement.execution_options(**{pg.DEFERRED: True})


def read_alone(session):
    """Have ``session`` run each statement as a transaction of its own: for
    a worker that writes nothing (a statement that wrote would commit by
    itself, and a worker retried after a lost connection would write it
    twice) and reads in one statement (one snapshot),
    which then ends with no ``ROLLBACK`` to send, a round trip fewer on
    PostgreSQL. Call it before the session's first statement."""
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def page_query(model, ids, column, limit, offset, descending=False, total=None):
    """One page of the rows whose ids ``ids`` (a select of ``model.id``)
    finds, in ``column``'s order: the page's ids are chosen by ``ids``
    alone, which an index can answer without reading the table (a deep
    offset is skipped in the index), and only the page's rows are read.

    Given ``total``, how many rows ``ids`` finds, a page nearer the end than
    the start is found from the end: the index is walked backwards past
    ``total - offset - limit`` entries rather than forwards past ``offset``,
    so the last page costs what the first does. (A row added or removed
    between the count and the page shifts the page by one, as it would
    shift an offset.)"""
    order = column.desc() if descending else column.asc()
    from_end = None if total is None else total - offset - limit
    if from_end is not None and offset < total and from_end < offset:
        backwards = column.asc() if descending else column.desc()
        page_ids = ids.order_by(backwards).limit(min(limit, total - offset)).offset(max(from_end, 0))
    else:
        page_ids = ids.order_by(order).limit(limit).offset(offset)
    return select(model).where(model.id.in_(page_ids.scalar_subquery())).order_by(order)


def waiting_rows(session, created_at, *conditions):
    """``(how many rows match conditions, seconds since the oldest's
    created_at)``, 0 seconds when none does: a queue in a table, for the
    metrics (the outbox's unsent events, the pending orders)."""
    count, oldest = session.execute(
        select(func.count(), func.min(created_at)).where(*conditions)).one()
    return count, (utcnow() - oldest).total_seconds() if oldest is not None else 0


def _sqlite_on_connect(dbapi_connection, connection_record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def session_factory(engine):
    # objects stay readable after commit, so a worker can dump what it saved
    factory = sessionmaker(bind=engine, class_=Session, expire_on_commit=False)
    event.listen(factory, "after_begin", _note_session)
    return factory


class WorkerDatabase(DatabaseWrapper):
    """What a worker's ``self.db`` is: nameko-sqlalchemy's wrapper, which
    also tells whether the worker may be run again after the database
    failed it."""

    def sessions(self):
        return [session for session in (self._worker_session, *self._context_sessions)
                if session is not None]

    def nothing_committed(self):
        """Whether no session of this worker has sent a COMMIT, so the
        database holds none of its work: a connection lost before that
        rolled its transaction back."""
        return not any(session.info.get(COMMIT_SENT) for session in self.sessions())

    def start_over(self):
        """Closes every session (their connections go back to the pool, a
        broken one replaced); the next use of ``session`` opens a new one."""
        self.close()
        self._worker_session = None
        self._context_sessions = []


class Database(nameko_sqlalchemy.Database):
    """nameko-sqlalchemy's ``Database`` with the URI from ``DB_URIS.<service>``.

    ``self.db.session`` is the worker's session; it is closed at worker
    teardown and never committed for you.
    """

    def setup(self):
        self.db_uri = database_uri(self.container.config, self.container.service_name)
        self.engine = create_db_engine(self.db_uri, self.container.config.get(
            MAX_WORKERS_CONFIG_KEY, DEFAULT_MAX_WORKERS))
        self.Session = session_factory(self.engine)

    def get_dependency(self, worker_ctx):
        database = WorkerDatabase(self.Session)
        self.dbs[worker_ctx] = database
        return database

    def worker_teardown(self, worker_ctx):
        # A connection that dropped while the session closes would raise here,
        # and nameko kills the whole container on an error in teardown.
        try:
            super().worker_teardown(worker_ctx)
        except Exception:
            log.warning("closing the database session of %s failed", worker_ctx, exc_info=True)

class Money(TypeDecorator):
    """A Decimal amount with two places, stored as integer cents: SQLite has
    no exact decimal type, and a float must never touch a price."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        cents = Decimal(value) * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"{value!r} has more than two decimal places")
        return int(cents)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return (Decimal(value) / 100).quantize(CENT)


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use common.data.db.utcnow()")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
