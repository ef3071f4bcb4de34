"""What the orders service counts in its database when Prometheus scrapes.

A pending order waits for inventory's answer to its reservation request; it
normally gets one within milliseconds. One that waits for minutes tells of a
stopped inventory service, a lost event or a stalled outbox: the alert
``ShopOrdersStuckPending`` (deploy/prometheus/rules/shop.yml) fires on it.
The idempotency keys kept grow with the requests that send one, and shrink
as keys expire and are pruned.
"""
from common.data.db import waiting_rows
from common.observability.telemetry import DatabaseGauges
from orders import idempotency
from orders.domain import PENDING
from orders.models import Order


class OrdersGauges(DatabaseGauges):
    documentation = {
        "shop_orders_pending": "Orders placed and waiting for inventory's answer",
        "shop_orders_pending_oldest_seconds":
            "How long the oldest pending order has waited; 0 when none waits",
        "shop_idempotency_keys": "Idempotency keys kept, with the answers their requests got"}

    def read(self, session):
        waiting, oldest_seconds = waiting_rows(session, Order.created_at, Order.status == PENDING)
        return {"shop_orders_pending": waiting,
                "shop_orders_pending_oldest_seconds": oldest_seconds,
                "shop_idempotency_keys": idempotency.kept(session)}
