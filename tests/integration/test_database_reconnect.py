"""Connections PostgreSQL dropped (a restart, an administrator) are replaced:
an idle one is pinged before use, and one in use fails a single statement,
after which the pool starts over with new connections; and the pool keeps
one connection per worker open rather than starting a server process for
each transaction past five. (PostgreSQL only: an SQLite file has no server
to drop them, and one connection.)"""
import contextlib

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from common.data import db
from tests.conftest import BACKEND

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BACKEND != "postgresql", reason="a server drops connections"),
]


def backend_pid(engine):
    with engine.connect() as connection:
        return connection.scalar(text("SELECT pg_backend_pid()"))


def drop_every_connection(engine, pids):
    with db.create_db_engine(engine.url).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE pid = ANY(:pids)"), {"pids": list(pids)})


def test_an_idle_connection_that_was_dropped_is_replaced_before_use(engine, monkeypatch):
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)
    dropped = backend_pid(engine)
    drop_every_connection(engine, [dropped])
    assert backend_pid(engine) != dropped


def test_a_connection_dropped_while_in_use_fails_one_statement_and_the_pool_starts_over(
        engine, monkeypatch):
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 3600.0)
    with engine.connect() as first, engine.connect() as second:
        pids = [first.scalar(text("SELECT pg_backend_pid()")),
                second.scalar(text("SELECT pg_backend_pid()"))]
    drop_every_connection(engine, pids)

    with pytest.raises(OperationalError):
        backend_pid(engine)
    # the other dropped connection is not used again either
    with engine.connect() as first, engine.connect() as second:
        assert not {first.scalar(text("SELECT pg_backend_pid()")),
                    second.scalar(text("SELECT pg_backend_pid()"))} & set(pids)


def pids_of_connections_held_at_once(engine, how_many):
    with contextlib.ExitStack() as held:
        connections = [held.enter_context(engine.connect()) for _ in range(how_many)]
        return {connection.scalar(text("SELECT pg_backend_pid()")) for connection in connections}


def test_as_many_transactions_as_workers_at_once_reuse_their_connections(db_uris):
    # the pool keeps one per worker: a smaller one closed the overflow
    # connections as they came back, and a new server process started for
    # many later transactions
    workers = 8
    engine = db.create_db_engine(db_uris["products"], workers)
    try:
        first = pids_of_connections_held_at_once(engine, workers)
        assert pids_of_connections_held_at_once(engine, workers) == first
    finally:
        engine.dispose()
