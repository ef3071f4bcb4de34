"""Expiry of a flash sale's unpaid orders, with two orders instances and
inventory in real containers: every due order expires exactly once, and
every unit it held returns to stock."""
from collections import Counter
from datetime import timedelta

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import func, select

from common.data.db import session_factory, utcnow
from inventory.models import Reservation
from inventory.service import InventoryService
from orders.models import Order, OutboxMessage
from orders.service import EXPIRY_BATCH, OrdersService
from tests.helpers import wait_for
from tools.harness.dataset import insert_orders

pytestmark = pytest.mark.integration

DUE = 2 * EXPIRY_BATCH + 200  # three batches, shared by two instances
PRODUCTS = {1: ("Cup", "2.50"), 2: ("Pot", "19.99"), 3: ("Jug", "7.00")}


def count(engine, statement):
    with session_factory(engine)() as session:
        return session.scalar(statement)


def test_two_instances_expire_every_due_order_once_and_release_its_stock(
        container_factory, shop_config, database_engines):
    container_factory(InventoryService, shop_config).start()
    with ServiceRpcProxy("inventory", shop_config, timeout=10) as inventory:
        for product_id in PRODUCTS:
            inventory.add_stock(product_id, 5)
        due = insert_orders(
            database_engines["orders"], database_engines["inventory"], DUE,
            status="awaiting_payment", products=PRODUCTS, user_ids=[10, 11, 12],
            expires_at=utcnow() - timedelta(seconds=1))
        not_due = insert_orders(
            database_engines["orders"], database_engines["inventory"], 3,
            status="awaiting_payment", products=PRODUCTS, user_ids=[10],
            expires_at=utcnow() + timedelta(hours=1))
        held = {stock["product_id"]: stock["reserved"]
                for stock in inventory.get_stocks(list(PRODUCTS))}
        assert sum(held.values()) == DUE + 3

        config = {**shop_config, "EXPIRY_CHECK_SECONDS": 0.2}
        for _ in range(2):
            container_factory(OrdersService, config).start()

        # only the not-yet-due orders still hold stock, one unit each
        wait_for(lambda: [stock["reserved"] for stock in inventory.get_stocks(list(PRODUCTS))]
                 == [1, 1, 1], timeout=60)
        # released units stay on hand: the loader restocked what it reserved
        assert [stock["on_hand"] for stock in inventory.get_stocks(list(PRODUCTS))] == [
            5 + held[product_id] for product_id in PRODUCTS]

    orders_db, inventory_db = database_engines["orders"], database_engines["inventory"]
    assert count(orders_db, select(func.count()).where(Order.status == "expired")) == DUE
    assert count(orders_db, select(func.count()).where(
        Order.status == "awaiting_payment", Order.id.in_(not_due))) == 3
    with session_factory(orders_db)() as session:
        announced = Counter(order_id for row in session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "orders_expired"))
            for order_id in row.payload["data"]["order_ids"])
    assert set(announced) == set(due) and set(announced.values()) == {1}
    assert count(inventory_db, select(func.count()).where(
        Reservation.status == "released")) == DUE
