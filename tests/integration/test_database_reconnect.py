"""Connections PostgreSQL dropped (a restart, an administrator) are replaced:
an idle one is pinged before use, and one in use fails a single statement,
after which the pool starts over with new connections. (PostgreSQL only: an
SQLite file has no server to drop them.)"""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from common import db
from tests.conftest import BACKEND

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BACKEND != "postgresql", reason="a server drops connections"),
]


@pytest.fixture
def engine(db_uris):
    engine = db.create_db_engine(db_uris["products"])
    yield engine
    engine.dispose()


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
