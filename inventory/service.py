import logging

from common.data.db import Database
from common.messaging.entrypoints import health_check, rpc
from common.messaging.events import handle_event
from common.messaging.outbox import Outbox
from common.observability.telemetry import Telemetry
from common.schemas import load, load_id
from inventory import stock
from inventory.domain import COMMITTED, RELEASED, answer
from inventory.contract import CONTRACT
from inventory.models import Base, OutboxMessage
from inventory.schemas import (
    OrderEventSchema, OrdersExpiredSchema, ProductCreatedSchema, ProductIdsSchema,
    ReservationRequestSchema, StockChangeSchema, StockSchema)

log = logging.getLogger(__name__)

stock_schema = StockSchema()


class InventoryService:
    name = "inventory"

    db = Database(Base)
    outbox = Outbox(OutboxMessage, CONTRACT)
    telemetry = Telemetry(counters={"reservations": (
        "shop_reservations", "Answers to reservation requests: reserved or failed", ["result"])})

    ping = health_check()

    @rpc
    def get_stock(self, product_id):
        """``{product_id, on_hand, reserved, available}``; 0 for a product with no record."""
        product_id = load_id(product_id, "product")
        return stock_schema.dump(stock.read(self.db.session, [product_id])[product_id])

    @rpc
    def get_stocks(self, ids):
        """The stock of each product in ``ids``, in that order, in one query."""
        ids = list(dict.fromkeys(load(ProductIdsSchema, {"ids": ids})["ids"]))
        return stock_schema.dump(stock.read(self.db.session, ids).values(), many=True)

    @rpc
    def add_stock(self, product_id, quantity):
        """Restock: ``on_hand += quantity``."""
        change = load(StockChangeSchema, {"product_id": product_id, "quantity": quantity})
        stock.add(self.db.session, **change)
        return self.get_stock(change["product_id"])

    @rpc
    def remove_stock(self, product_id, quantity):
        """Write off: ``on_hand -= quantity``; a Conflict if that would go below reserved."""
        change = load(StockChangeSchema, {"product_id": product_id, "quantity": quantity})
        stock.remove(self.db.session, **change)
        return self.get_stock(change["product_id"])

    @handle_event("products", "product_created", ProductCreatedSchema())
    def on_product_created(self, product):
        stock.ensure_records(self.db.session, [product["id"]])
        self.db.session.commit()

    @handle_event("orders", "stock_reservation_requested", ReservationRequestSchema())
    def on_stock_reservation_requested(self, request):
        lines = [(line["product_id"], line["quantity"]) for line in request["items"]]
        reservation = stock.reserve(self.db.session, request["order_id"], lines)
        reply = answer(reservation.order_id, reservation.status,
                       reservation.reason, reservation.short)
        if reply is None:
            log.info("order %s was cancelled before its reservation request", request["order_id"])
        else:
            self.outbox.add(*reply)
        self.db.session.commit()
        if reply is not None:
            self.telemetry.reservations.labels(
                result="failed" if reply[0] == "stock_reservation_failed" else "reserved").inc()

    @handle_event("orders", "order_paid", OrderEventSchema())
    def on_order_paid(self, event):
        if not stock.settle(self.db.session, [event["order_id"]], COMMITTED):
            log.info("order %s: no reserved stock to commit", event["order_id"])

    @handle_event("orders", "order_cancelled", OrderEventSchema())
    def on_order_cancelled(self, event):
        if not stock.settle(self.db.session, [event["order_id"]], RELEASED):
            log.info("order %s: no reserved stock to release", event["order_id"])

    @handle_event("orders", "orders_expired", OrdersExpiredSchema())
    def on_orders_expired(self, event):
        released = stock.settle(self.db.session, event["order_ids"], RELEASED)
        if len(released) < len(event["order_ids"]):
            log.info("orders expired: %d of %d had no reserved stock to release",
                     len(event["order_ids"]) - len(released), len(event["order_ids"]))
