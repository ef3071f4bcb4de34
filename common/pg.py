"""psycopg2 without a round trip of its own for ``BEGIN``.

psycopg2 opens each transaction by sending ``BEGIN`` alone and waiting for
the answer before it sends the first statement: a transaction of one UPDATE
costs three round trips to the server, each about 0.1 ms of the service's
CPU under eventlet, where the wait goes through the hub.

Here psycopg2 stays in its autocommit mode and this dialect keeps
SQLAlchemy's transactions itself: ``BEGIN`` goes out in the same message as
the transaction's first statement (PostgreSQL runs the two in order, and a
failing statement leaves the transaction open and aborted, as psycopg2's
would be), ``COMMIT`` and ``ROLLBACK`` end it as statements. A transaction
that sent no statement sends nothing at all.

The ``AUTOCOMMIT`` isolation level (for ``VACUUM`` or ``CREATE DATABASE``)
sends no ``BEGIN``; the other levels are set for the session.
``create_db_engine`` uses this dialect for every PostgreSQL URI.
"""
import psycopg2.extensions
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

DRIVER = "psycopg2_lazybegin"


class LazyBeginConnection(psycopg2.extensions.connection):
    """A psycopg2 connection that knows whether a transaction was begun, or
    is open on the server."""

    statement_autocommit = False  # the AUTOCOMMIT isolation level: no BEGIN
    begin_pending = False  # begun, but the server has not heard of it yet
    in_transaction = False  # the server's transaction is open

    def begin(self):
        self.begin_pending = not self.statement_autocommit

    def with_begin(self, statement):
        """``statement``, preceded by the pending ``BEGIN`` if there is one."""
        if not self.begin_pending:
            return statement
        self.begin_pending = False
        self.in_transaction = True
        return f"BEGIN;{statement}"

    def end(self, command):
        """``COMMIT`` or ``ROLLBACK`` the server's transaction, if it has one."""
        self.begin_pending = False
        if self.in_transaction:
            # cleared first: a connection that fails here is discarded anyway
            self.in_transaction = False
            with self.cursor() as cursor:
                cursor.execute(command)


class LazyBeginDialect(PGDialect_psycopg2):
    driver = DRIVER
    supports_statement_cache = True  # it compiles exactly as psycopg2's dialect

    def create_connect_args(self, url):
        args, kwargs = super().create_connect_args(url)
        return args, {**kwargs, "connection_factory": LazyBeginConnection}

    def on_connect(self):
        configure = super().on_connect()

        def connect(dbapi_connection):
            if configure is not None:
                configure(dbapi_connection)
            dbapi_connection.autocommit = True  # psycopg2 sends no BEGIN of its own

        return connect

    def set_isolation_level(self, dbapi_connection, level):
        connection = _unproxied(dbapi_connection)
        connection.statement_autocommit = level == "AUTOCOMMIT"
        if not connection.statement_autocommit:
            # psycopg2's own setter would turn its autocommit mode off
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}")

    def detect_autocommit_setting(self, dbapi_connection):
        return _unproxied(dbapi_connection).statement_autocommit

    def do_begin(self, dbapi_connection):
        _unproxied(dbapi_connection).begin()

    def do_commit(self, dbapi_connection):
        _unproxied(dbapi_connection).end("COMMIT")

    def do_rollback(self, dbapi_connection):
        _unproxied(dbapi_connection).end("ROLLBACK")

    def do_execute(self, cursor, statement, parameters, context=None):
        cursor.execute(cursor.connection.with_begin(statement), parameters)

    def do_execute_no_params(self, cursor, statement, context=None):
        cursor.execute(cursor.connection.with_begin(statement))

    def do_executemany(self, cursor, statement, parameters, context=None):
        begin = cursor.connection.with_begin("")
        if begin:  # psycopg2 runs the statement once per page of rows
            cursor.execute(begin)
        super().do_executemany(cursor, statement, parameters, context)


def _unproxied(connection):
    """The psycopg2 connection behind the pool's proxy, if it is one."""
    return getattr(connection, "dbapi_connection", connection)


registry.register(f"postgresql.{DRIVER}", __name__, "LazyBeginDialect")
