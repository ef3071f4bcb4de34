"""Transactions on PostgreSQL through common.data.pg, which sends ``BEGIN`` with a
transaction's first statement instead of on its own, and a deferred statement
with the next one: they are still all or nothing, and what the server sees is
fewer messages. (PostgreSQL only.)"""
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, text, update
from sqlalchemy.exc import IntegrityError

from common.data.db import deferred, read_alone, session_factory
from tests.conftest import BACKEND

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BACKEND != "postgresql", reason="psycopg2's transactions"),
    pytest.mark.usefixtures("probe"),
]


@pytest.fixture
def probe(engine):
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS tx_probe (id int PRIMARY KEY, v int)"))
        connection.execute(text("DELETE FROM tx_probe"))
        connection.execute(text("INSERT INTO tx_probe VALUES (1, 0)"))
    yield
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE tx_probe"))


def value(engine):
    with engine.connect() as connection:
        return connection.scalar(text("SELECT v FROM tx_probe WHERE id = 1"))


def test_a_rolled_back_transaction_leaves_nothing(engine):
    with engine.connect() as connection:
        connection.execute(text("UPDATE tx_probe SET v = 5"))
        connection.execute(text("UPDATE tx_probe SET v = v + 1"))
        connection.rollback()
    assert value(engine) == 0


def test_a_failing_statement_undoes_the_ones_before_it(engine):
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.execute(text("UPDATE tx_probe SET v = 7"))  # sent with the BEGIN
            connection.execute(text("INSERT INTO tx_probe VALUES (1, 1)"))
    assert value(engine) == 0


def test_a_committed_transaction_is_seen_by_others_and_only_then(engine):
    with engine.connect() as writer:
        writer.execute(text("UPDATE tx_probe SET v = 3"))
        assert value(engine) == 0  # another connection: not committed yet
        writer.commit()
    assert value(engine) == 3


def test_begin_travels_with_the_first_statement_and_the_transaction_stays_open(engine):
    with engine.connect() as connection, engine.connect() as observer:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        connection.commit()
        connection.execute(text("UPDATE tx_probe SET v = 1"))
        query, state = observer.execute(text(
            "SELECT query, state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).one()
        assert query == "BEGIN;UPDATE tx_probe SET v = 1"
        assert state == "idle in transaction"
        observer.commit()  # a transaction sees one snapshot of pg_stat_activity
        connection.commit()
        state = observer.scalar(text(
            "SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
        assert state == "idle"


def test_a_transaction_that_ran_nothing_sends_nothing(engine):
    with engine.connect() as connection, engine.connect() as observer:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        connection.commit()
        connection.begin()
        connection.commit()
        connection.begin()
        connection.rollback()
        last_query = observer.scalar(text(
            "SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
        assert last_query == "COMMIT"  # the one after pg_backend_pid()


def test_autocommit_runs_outside_a_transaction_and_the_connection_comes_back_transactional(
        engine):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM tx_probe"))  # refused inside a transaction
        connection.execute(text("UPDATE tx_probe SET v = 9"))
    assert value(engine) == 9
    # the pool hands the same connection out again, back in transactions
    with engine.connect() as connection:
        connection.execute(text("UPDATE tx_probe SET v = 10"))
        connection.rollback()
    assert value(engine) == 9


def test_a_session_reading_alone_sends_its_statements_alone_and_comes_back_transactional(
        engine):
    with engine.connect() as observer:
        session = session_factory(engine)()
        read_alone(session)
        pid = session.scalar(text("SELECT pg_backend_pid()"))
        assert session.scalar(text("SELECT v FROM tx_probe")) == 0
        session.close()
        # no BEGIN before it, no ROLLBACK after it, no SET to restore the level
        assert last_query(observer, pid) == "SELECT v FROM tx_probe"
        session = session_factory(engine)()
        assert session.scalar(text("SELECT pg_backend_pid()")) == pid  # the pool's same connection
        session.execute(text("UPDATE tx_probe SET v = 4"))
        session.close()  # not committed: rolled back
    assert value(engine) == 0


def test_a_serializable_transaction_is_serializable(engine):
    with engine.connect().execution_options(isolation_level="SERIALIZABLE") as connection:
        assert connection.scalar(text("SHOW transaction_isolation")) == "serializable"
        connection.rollback()
    with engine.connect() as connection:
        assert connection.scalar(text("SHOW transaction_isolation")) == "read committed"


def test_rows_written_many_at_once_are_part_of_the_transaction(engine):
    with engine.connect() as connection:
        connection.execute(text("INSERT INTO tx_probe VALUES (:id, 0)"),
                           [{"id": 2}, {"id": 3}, {"id": 4}])
        connection.rollback()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM tx_probe")) == 1


def last_query(observer, pid):
    observer.commit()  # a transaction sees one snapshot of pg_stat_activity
    return observer.scalar(text("SELECT query FROM pg_stat_activity WHERE pid = :pid"),
                           {"pid": pid})


@pytest.fixture
def observed(engine):
    """A connection, its server process id, and another connection to watch it."""
    with engine.connect() as connection, engine.connect() as observer:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        connection.commit()
        yield connection, observer, pid


def test_a_deferred_statement_travels_with_the_next_one(engine, observed):
    connection, observer, pid = observed
    connection.execute(deferred(text("UPDATE tx_probe SET v = 2")))
    assert last_query(observer, pid) == "COMMIT"  # nothing sent yet
    connection.execute(text("UPDATE tx_probe SET v = v + :step"), {"step": 1})
    assert last_query(observer, pid) == (
        "BEGIN;UPDATE tx_probe SET v = 2;UPDATE tx_probe SET v = v + 1")
    connection.commit()
    assert value(engine) == 3


def test_a_deferred_statement_travels_with_the_commit(engine, observed):
    connection, observer, pid = observed
    connection.execute(deferred(text("UPDATE tx_probe SET v = :v")), {"v": 4})
    connection.commit()
    assert last_query(observer, pid) == "BEGIN;UPDATE tx_probe SET v = 4;COMMIT"
    assert value(engine) == 4


def test_a_rollback_drops_a_deferred_statement_unsent(engine, observed):
    connection, observer, pid = observed
    connection.execute(deferred(text("UPDATE tx_probe SET v = 5")))
    connection.rollback()
    assert last_query(observer, pid) == "COMMIT"  # the one after pg_backend_pid()
    connection.execute(text("UPDATE tx_probe SET v = v + 1"))
    connection.commit()
    assert value(engine) == 1


@pytest.mark.parametrize("carrier", ["statement", "commit"])
def test_a_failing_deferred_statement_fails_what_carries_it_and_undoes_the_transaction(
        engine, carrier):
    with engine.connect() as connection:
        connection.execute(text("UPDATE tx_probe SET v = 6"))
        connection.execute(deferred(text("INSERT INTO tx_probe VALUES (1, 1)")))
        with pytest.raises(IntegrityError, match="tx_probe_pkey"):
            if carrier == "statement":
                connection.execute(text("UPDATE tx_probe SET v = 7"))
            else:
                connection.commit()
    assert value(engine) == 0
    # the aborted transaction was rolled back: the pool's connection works on
    with engine.connect() as connection:
        connection.execute(text("UPDATE tx_probe SET v = 9"))
        connection.commit()
    assert value(engine) == 9


def test_deferred_statements_keep_their_parameters_and_percent_signs(engine):
    with engine.connect() as connection:
        connection.execute(text("ALTER TABLE tx_probe ADD COLUMN note text"))
        connection.execute(deferred(text("INSERT INTO tx_probe VALUES (:id, 0, :note)")),
                           [{"id": 2, "note": "50% off, %s and %(x)s"}, {"id": 3, "note": "'"}])
        connection.execute(deferred(text("UPDATE tx_probe SET note = '100%' WHERE id = 1")))
        rows = connection.execute(text(
            "SELECT id, note FROM tx_probe WHERE note LIKE :pattern ORDER BY id"),
            {"pattern": "%"}).all()
        connection.commit()
    assert rows == [(1, "100%"), (2, "50% off, %s and %(x)s"), (3, "'")]


def test_a_statement_with_returning_cannot_be_deferred(engine):
    table = Table("tx_probe", MetaData(), Column("id", Integer, primary_key=True),
                  Column("v", Integer))
    with engine.connect() as connection:
        with pytest.raises(ValueError, match="RETURNING"):
            connection.execute(deferred(
                update(table).values(v=1).returning(table.c.id)))
        connection.rollback()
    assert value(engine) == 0


def test_outside_a_transaction_a_deferred_statement_runs_at_once(engine):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(deferred(text("UPDATE tx_probe SET v = 11")))
        assert value(engine) == 11
