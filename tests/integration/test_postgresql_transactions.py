"""Transactions on PostgreSQL through common.pg, which sends ``BEGIN`` with a
transaction's first statement instead of on its own: they are still all or
nothing, and what the server sees is one message less. (PostgreSQL only.)"""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

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
