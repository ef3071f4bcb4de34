"""A worker that PostgreSQL failed before it sent a COMMIT runs again and
its caller gets the answer; one that failed while its COMMIT was on the
way, whose work may or may not be stored, is answered ServiceUnavailable
(503 with Retry-After at the gateway) for the caller to retry with its key.
Against the real broker and database: PostgreSQL drops the connections.
(PostgreSQL only: an SQLite file has no server to drop them.)"""
from decimal import Decimal

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import event, func, select, text

from common.data.db import Database, create_db_engine, utcnow
from common.errors import ServiceUnavailable
from common.messaging.entrypoints import rpc
from products.models import Base, Product
from tests.conftest import BACKEND

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BACKEND != "postgresql", reason="a server drops connections"),
]


class ProductsLosingConnections:
    """Adds a product; the first attempt loses its connection where ``lose``
    says: "before_commit" (its own backend terminated mid-transaction),
    "at_commit" (terminated as its COMMIT is about to go out), or "always"."""

    name = "products"
    db = Database(Base)
    attempts = []

    @rpc
    def add(self, name, lose):
        ProductsLosingConnections.attempts.append(name)
        now = utcnow()
        self.db.session.add(Product(name=name, price=Decimal("1.00"), created_at=now,
                                    updated_at=now))
        self.db.session.flush()
        first_attempt = len(ProductsLosingConnections.attempts) == 1
        if lose == "always" or (lose == "before_commit" and first_attempt):
            self.db.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        if lose == "at_commit" and first_attempt:
            terminate_on_commit(self.db.session)
        self.db.session.commit()
        return len(ProductsLosingConnections.attempts)


def terminate_on_commit(session):
    connection = session.connection()
    pid = connection.scalar(text("SELECT pg_backend_pid()"))

    def terminate(conn):
        with create_db_engine(conn.engine.url).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(connection.engine, "commit", terminate, once=True)


@pytest.fixture
def products(container_factory, shop_config):
    ProductsLosingConnections.attempts = []
    container_factory(ProductsLosingConnections, shop_config).start()
    with ServiceRpcProxy("products", shop_config, timeout=15) as proxy:
        yield proxy


def stored(engine, name):
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).where(Product.name == name))


def test_work_the_database_dropped_before_its_commit_is_run_again_and_stored_once(
        products, engine):
    assert products.add("Cup", "before_commit") == 2  # the second attempt answered
    assert stored(engine, "Cup") == 1


def test_work_whose_commit_was_cut_off_is_answered_unavailable_and_not_run_again(
        products, engine):
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        products.add("Plate", "at_commit")
    assert ProductsLosingConnections.attempts == ["Plate"]
    # the connection died before the COMMIT arrived, so nothing is stored;
    # the service could not know that
    assert stored(engine, "Plate") == 0


def test_a_database_that_keeps_failing_is_answered_unavailable_after_two_retries(
        products, engine):
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        products.add("Bowl", "always")
    assert ProductsLosingConnections.attempts == ["Bowl"] * 3
    assert stored(engine, "Bowl") == 0
