"""Inventory and orders in real containers, their events delivered through
RabbitMQ, each event delivered twice: handlers must be idempotent."""
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter

from common.messaging.events import envelope
from inventory.service import InventoryService
from orders.service import OrdersService
from products.service import ProductsService
from tests.helpers import event_recorder, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def inventory(container_factory, shop_config):
    container = container_factory(InventoryService, shop_config)
    container.start()
    return container


@pytest.fixture
def recorder(container_factory, shop_config):
    Recorder, received = event_recorder(
        ("inventory", "stock_reserved"), ("inventory", "stock_reservation_failed"))
    container = container_factory(Recorder, shop_config)
    container.start()
    container.received = received
    return container


def deliver_twice(config, container, handler, source, event_type, data):
    """The same event (same event id) published twice, as a redelivery would."""
    dispatch = event_dispatcher(config)
    event = envelope(source, event_type, data)
    for _ in range(2):
        with entrypoint_waiter(container, handler, timeout=10):
            dispatch(source, event_type, event)


def test_a_request_delivered_twice_reserves_once_and_is_answered_twice(
        inventory, recorder, shop_config):
    with ServiceRpcProxy("inventory", shop_config, timeout=10) as rpc:
        rpc.add_stock(1, 3)
        deliver_twice(shop_config, inventory, "on_stock_reservation_requested",
                      "orders", "stock_reservation_requested",
                      {"order_id": 7, "items": [{"product_id": 1, "quantity": 2}]})
        assert rpc.get_stock(1) == {"product_id": 1, "on_hand": 3, "reserved": 2, "available": 1}

        deliver_twice(shop_config, inventory, "on_order_paid",
                      "orders", "order_paid", {"order_id": 7})
        assert rpc.get_stock(1) == {"product_id": 1, "on_hand": 1, "reserved": 0, "available": 1}
    wait_for(lambda: len(recorder.received) == 2)
    assert [data["data"] for _, data in recorder.received] == [{"order_id": 7}] * 2


def test_a_cancellation_delivered_twice_releases_once(inventory, shop_config):
    with ServiceRpcProxy("inventory", shop_config, timeout=10) as rpc:
        rpc.add_stock(1, 3)
        with entrypoint_waiter(inventory, "on_stock_reservation_requested", timeout=10):
            event_dispatcher(shop_config)("orders", "stock_reservation_requested", envelope(
                "orders", "stock_reservation_requested",
                {"order_id": 7, "items": [{"product_id": 1, "quantity": 2}]}))
        deliver_twice(shop_config, inventory, "on_order_cancelled",
                      "orders", "order_cancelled", {"order_id": 7, "reason": "cancelled"})
        assert rpc.get_stock(1) == {"product_id": 1, "on_hand": 3, "reserved": 0, "available": 3}


def test_orders_moves_on_once_for_an_answer_delivered_twice(runner_factory, shop_config):
    runner = runner_factory(shop_config, ProductsService, OrdersService)
    runner.start()
    orders = next(c for c in runner.containers if c.service_name == "orders")
    with ServiceRpcProxy("products", shop_config, timeout=10) as products:
        product = products.create(name="Cup", price="2.00")
    with ServiceRpcProxy("orders", shop_config, timeout=10) as rpc:
        order = rpc.place_order(3, [{"product_id": product["id"], "quantity": 1}])
        deliver_twice(shop_config, orders, "on_stock_reserved",
                      "inventory", "stock_reserved", {"order_id": order["id"]})
        first = rpc.get_order(order["id"])
        deliver_twice(shop_config, orders, "on_stock_reservation_failed",
                      "inventory", "stock_reservation_failed",
                      {"order_id": order["id"], "reason": "insufficient_stock", "short": []})
        assert rpc.get_order(order["id"]) == first
    assert first["status"] == "awaiting_payment"
