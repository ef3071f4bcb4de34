"""A database connection lost while a worker's session closes must not kill
the service (nameko kills a container on an error in worker teardown)."""
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko_sqlalchemy.database import DatabaseWrapper
from sqlalchemy.exc import OperationalError

from products.service import ProductsService

pytestmark = pytest.mark.integration


def test_a_failing_session_close_leaves_the_service_running(
        container_factory, shop_config, monkeypatch):
    container = container_factory(ProductsService, shop_config)
    container.start()
    close = DatabaseWrapper.close
    failures = []

    def close_on_a_dropped_connection(wrapper):
        if failures:
            return close(wrapper)
        failures.append(1)
        # the session is closed all the same, as a dropped connection's would
        # be: left open, it held its transaction, and the tables' locks, until
        # garbage collection, and the next test could not empty the tables
        close(wrapper)
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    monkeypatch.setattr(DatabaseWrapper, "close", close_on_a_dropped_connection)
    with ServiceRpcProxy("products", shop_config, timeout=10) as products:
        first = products.create(name="Cup", price="1.00")
        assert products.get(first["id"]) == first
    assert failures  # the first worker's teardown failed, and the service still answers
    assert not container._died.ready()
