import logging
from datetime import timedelta

from nameko.dependency_providers import Config
from nameko.timer import timer
from sqlalchemy import func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload

from common.data.db import Database, deferred, page_query, utcnow
from common.errors import Conflict, NotFound, PaymentRequired, ShopError
from common.messaging.entrypoints import config_timer, health_check, rpc
from common.messaging.events import handle_event
from common.messaging.outbox import Outbox
from common.messaging.rpc import ServiceRpc
from common.observability.telemetry import Telemetry
from common.schemas import IdempotencyKeySchema, load, load_id
from orders import catalogue, expiry, idempotency
from orders.domain import (
    PENDING, merge_lines, next_status, price_lines, total_of)
from orders.contract import CONTRACT
from orders.models import Base, Order, OrderLine, OutboxMessage
from orders.gauges import OrdersGauges
from orders.idempotency import IdempotencyKeys
from orders.payments import PaymentDeclined, Payments, charge_key
from orders.schemas import (
    CatalogueProductSchema, ListAllOrdersSchema, ListOrdersSchema, OrderSchema, PlaceOrderSchema,
    ProductDeletedSchema, StockReservationFailedSchema, StockReservedSchema)

log = logging.getLogger(__name__)

order_schema = OrderSchema()
# built once: placing an order is the busiest write (see Order.transition_of_one)
INSERT_ORDER = insert(Order.__table__).returning(Order.__table__.c.id)
# the lines go out with the outbox row's INSERT, which is sent anyway
INSERT_ORDER_LINES = deferred(insert(OrderLine.__table__))
# orders expired per statement (orders.expiry)
EXPIRY_BATCH = 500
# how often expired idempotency keys are looked for
PRUNE_SECONDS = 60


class OrdersService:
    name = "orders"

    db = Database(Base)
    outbox = Outbox(OutboxMessage, CONTRACT)
    products = ServiceRpc("products")
    payments = Payments()
    config = Config()
    telemetry = Telemetry(counters={"orders": (
        "shop_orders", "Orders, by the status they entered: pending (placed), "
        "awaiting_payment, rejected, paid, cancelled, expired", ["status"])},
        histograms={"reservation_seconds": (
            "shop_order_reservation_seconds", "Time from an order's placement until "
            "inventory answered, by the status it moved to: awaiting_payment or rejected",
            ["status"])})
    gauges = OrdersGauges()
    idempotency_keys = IdempotencyKeys()

    ping = health_check()

    @rpc
    def place_order(self, user_id, items, idempotency_key=None):
        """Store a ``pending`` order priced from the catalogue and ask inventory
        to reserve its stock (``stock_reservation_requested``).
        ``items``: ``[{"product_id": 1, "quantity": 2}]``. With an
        ``idempotency_key``, see :meth:`_once`."""
        request = load(PlaceOrderSchema, {"user_id": user_id, "items": items})
        return self._once(request["user_id"], idempotency_key, "place_order",
                          {"items": request["items"]}, lambda keep: self._place(request, keep))

    def _place(self, request, keep_answer):
        lines = merge_lines(request["items"])
        priced = price_lines(lines, self._products([product_id for product_id, _ in lines]))
        now = utcnow()
        # Core INSERTs, not objects for the unit of work: the busiest write
        # path, where the flush's bookkeeping cost more than the statements
        row = {"user_id": request["user_id"], "status": PENDING, "total": total_of(priced),
               "created_at": now, "updated_at": now}
        order = {**row, "reason": None, "short": None, "expires_at": None}
        order["id"] = self.db.session.execute(INSERT_ORDER, row).scalar_one()
        order["lines"] = [
            {"order_id": order["id"], "position": position, "product_id": line.product_id,
             "name": line.name, "quantity": line.quantity, "unit_price": line.unit_price}
            for position, line in enumerate(priced)]
        self.db.session.execute(INSERT_ORDER_LINES, order["lines"])
        self.outbox.add("stock_reservation_requested", {
            "order_id": order["id"],
            "items": [{"product_id": pid, "quantity": quantity} for pid, quantity in lines]})
        answer = order_schema.dump(order)
        keep_answer(answer)
        self.db.session.commit()
        self.telemetry.orders.labels(status=PENDING).inc()
        return answer

    @rpc
    def get_order(self, order_id, user_id=None):
        """The order; with ``user_id``, only if it is that user's (else not found)."""
        return order_schema.dump(self._order(order_id, user_id))

    @rpc
    def list_orders(self, user_id, limit=20, offset=0):
        """A page of one user's orders, newest first: ``{"items": [...], "total": n}``."""
        page = load(ListOrdersSchema, {"user_id": user_id, "limit": limit, "offset": offset})
        return self._page_of_orders(Order.user_id == page["user_id"], page)

    @rpc
    def list_all_orders(self, limit=20, offset=0):
        """A page of every user's orders, newest first, as ``list_orders`` (for an admin)."""
        return self._page_of_orders(
            true(), load(ListAllOrdersSchema, {"limit": limit, "offset": offset}))

    @rpc
    def pay_order(self, order_id, user_id, idempotency_key=None):
        """Charge an order awaiting payment; it becomes ``paid`` and ``order_paid``
        commits its stock. A declined payment leaves it awaiting payment (402).
        With an ``idempotency_key``, see :meth:`_once`."""
        order_id, user_id = load_id(order_id, "order"), load_id(user_id, "user")
        return self._once(user_id, idempotency_key, "pay_order", {"order_id": order_id},
                          lambda keep: self._pay(order_id, user_id, keep))

    def _pay(self, order_id, user_id, keep_answer):
        order = self._order(order_id, user_id)
        next_status(order.id, order.status, "pay")  # 409 before any charge
        total, declined_attempts = order.total, order.payment_attempts
        # end the read before calling the provider: a slow one must not hold a connection
        self.db.session.rollback()
        try:
            payment_id = self.payments.charge(
                order_id, total, charge_key(order_id, declined_attempts))
        except PaymentDeclined as exc:
            self._count_declined(order_id, declined_attempts)
            raise PaymentRequired(f"Payment for order {order_id} was declined: {exc}") from None
        try:
            return self._change(order_id, "pay", keep_answer, lambda order: ("order_paid", {
                "order_id": order["id"], "user_id": order["user_id"], "total": order["total"],
                "payment_id": payment_id, "items": order["items"],
            }), payment_id=payment_id)
        except Conflict:
            # expired or cancelled while the provider charged: give the money back,
            # unless a concurrent request recorded this very charge (same key)
            self.db.session.rollback()
            recorded = self._order(order_id, with_lines=False).payment_id
            self.db.session.rollback()
            if recorded != payment_id:
                self.payments.refund(payment_id)
            raise

    def _count_declined(self, order_id, declined_attempts):
        """A declined charge: the next one goes to the provider with a new key."""
        orders = Order.__table__
        self.db.session.execute(
            update(orders).where(orders.c.id == order_id,
                                 orders.c.payment_attempts == declined_attempts)
            .values(payment_attempts=declined_attempts + 1))
        self.db.session.commit()

    @rpc
    def cancel_order(self, order_id, user_id, idempotency_key=None):
        """Cancel a pending or unpaid order; ``order_cancelled`` releases its
        stock. With an ``idempotency_key``, see :meth:`_once`."""
        order_id, user_id = load_id(order_id, "order"), load_id(user_id, "user")
        return self._once(user_id, idempotency_key, "cancel_order", {"order_id": order_id},
                          lambda keep: self._cancel(order_id, user_id, keep))

    def _cancel(self, order_id, user_id, keep_answer):
        self._order(order_id, user_id)
        return self._change(order_id, "cancel", keep_answer, lambda order: (
            "order_cancelled",
            {"order_id": order["id"], "user_id": order["user_id"], "reason": "cancelled"}))

    def _once(self, user_id, idempotency_key, operation, arguments, carry_out):
        """``carry_out(keep_answer)``'s answer, where ``keep_answer(answer)`` is
        called in the transaction that makes the change, before its commit.

        With an ``idempotency_key``, the request is carried out at most once
        for that key and user (orders.idempotency), and the answer is
        ``{"result": answer, "replayed": bool}``: the answer of the request
        that committed with the key, replayed, when that was not this one.
        The key is looked up only when the request fails, as one whose key
        was used before does."""
        if idempotency_key is None:
            return carry_out(lambda answer: None)
        request = idempotency.KeyedRequest(
            user_id, load(IdempotencyKeySchema, {"Idempotency-Key": idempotency_key})["key"],
            idempotency.fingerprint(operation, arguments))
        def keep_answer(answer):
            idempotency.keep_answer(
                self.db.session, request, answer, self.idempotency_keys.ttl, utcnow())

        with self.idempotency_keys.in_progress(request):
            while True:
                try:
                    return {"result": carry_out(keep_answer), "replayed": False}
                except (IntegrityError, ShopError):
                    # the key was used before (its commit failed on it, or the
                    # change was already made), or the request failed on its own
                    self.db.session.rollback()
                    earlier = idempotency.earlier_answer(self.db.session, request, utcnow())
                    if earlier is not None:
                        return {"result": earlier, "replayed": True}
                    # an expired use of the key stood in the way: without it, try again
                    if not idempotency.forget_expired(self.db.session, request, utcnow()):
                        raise

    @timer(interval=PRUNE_SECONDS)
    def prune_idempotency_keys(self):
        """Delete expired idempotency keys, a batch at a time until none is left."""
        while idempotency.prune(self.db.session, utcnow()) >= idempotency.PRUNE_BATCH_SIZE:
            pass

    @config_timer("EXPIRY_CHECK_SECONDS")
    def expire_orders(self):
        """Orders awaiting payment past their reservation's time become
        ``expired``, a batch at a time until none is due; one
        ``orders_expired`` event per batch returns their stock, published
        as soon as the batch commits, so inventory releases stock while the
        next batch is expired."""
        while True:
            expired = expiry.expire_due(self.db.session, utcnow(), EXPIRY_BATCH)
            if expired:
                self.outbox.add("orders_expired", {
                    "order_ids": [order_id for order_id, _ in expired],
                    "orders": [{"order_id": order_id, "user_id": user_id}
                               for order_id, user_id in expired]})
            self.db.session.commit()
            self.outbox.publish_committed()
            if expired:
                self.telemetry.orders.labels(status="expired").inc(len(expired))
                log.info("%d orders expired", len(expired))
            if len(expired) < EXPIRY_BATCH:
                return

    @handle_event("inventory", "stock_reserved", StockReservedSchema())
    def on_stock_reserved(self, event):
        ttl = timedelta(seconds=float(self.config["RESERVATION_TTL_SECONDS"]))
        self._settle_pending(event["order_id"], "reserve", None, expires_at=utcnow() + ttl)

    @handle_event("inventory", "stock_reservation_failed", StockReservationFailedSchema())
    def on_stock_reservation_failed(self, event):
        self._settle_pending(
            event["order_id"], "reject", lambda order: ("order_rejected", {
                "order_id": order.id, "user_id": order.user_id, "reason": event["reason"],
                "short": self._named(order.id, event["short"])}),
            reason=event["reason"], short=event["short"])

    def _named(self, order_id, short):
        """Inventory's short lines, with the names the order bought them by."""
        names = dict(self.db.session.execute(
            select(OrderLine.product_id, OrderLine.name).where(OrderLine.order_id == order_id)
        ).all())
        return [{**line, "name": names.get(line["product_id"], "")} for line in short]

    @handle_event("products", "product_created", CatalogueProductSchema())
    def on_product_created(self, product):
        catalogue.remember(self.db.session, [product])
        self.db.session.commit()

    @handle_event("products", "product_changed", CatalogueProductSchema())
    def on_product_changed(self, product):
        catalogue.remember(self.db.session, [product])
        self.db.session.commit()

    # what products on 0.2.0 publish; from 0.3.0 on, product_changed as well
    # (remembering a product twice changes nothing). Goes in 0.4.0.
    @handle_event("products", "product_updated", CatalogueProductSchema())
    def on_product_updated(self, product):
        catalogue.remember(self.db.session, [product])
        self.db.session.commit()

    @handle_event("products", "product_deleted", ProductDeletedSchema())
    def on_product_deleted(self, event):
        catalogue.forget(self.db.session, event["id"])
        self.db.session.commit()

    def _products(self, product_ids):
        """The products pricing needs (``{id, name, price}``), deleted ones
        left out: from orders' own copy of the catalogue, asking the products
        service only for those it has not heard of yet (and keeping them)."""
        known = catalogue.read(self.db.session, product_ids)
        unknown = [product_id for product_id in product_ids if product_id not in known]
        fetched = []
        if unknown:
            # end the read first: a slow products service must not hold a connection
            self.db.session.rollback()
            fetched = CatalogueProductSchema(many=True).load(self.products.get_many(unknown))
            catalogue.remember(self.db.session, fetched)
        return fetched + [product for product in known.values() if not product["deleted"]]

    def _settle_pending(self, order_id, action, announce, **fields):
        """Inventory's answer moves a pending order on. An answer delivered
        twice, or for an order cancelled meanwhile, changes nothing."""
        try:
            settled = self._transition(order_id, action, announce, **fields)
        except Conflict as exc:
            log.info("order %s: %s ignored: %s", order_id, action, exc)
        except NotFound:
            log.warning("order %s: %s for an unknown order", order_id, action)
        else:
            self.telemetry.reservation_seconds.labels(status=settled.status).observe(
                (utcnow() - settled.created_at).total_seconds())

    def _page_of_orders(self, which, page):
        total = self.db.session.scalar(select(func.count(Order.id)).where(which))
        orders = self.db.session.scalars(page_query(
            Order, select(Order.id).where(which), Order.id, page["limit"], page["offset"],
            descending=True))
        return {"items": order_schema.dump(orders, many=True), "total": total}

    def _order(self, order_id, user_id=None, with_lines=True):
        """The order, fresh from the database; not found for another user's.
        ``with_lines=False`` leaves its lines to be loaded if they are used."""
        order = self.db.session.get(
            Order, load_id(order_id, "order"), populate_existing=True,
            options=() if with_lines else [lazyload(Order.lines)])
        if order is None or (user_id is not None and order.user_id != user_id):
            raise NotFound.entity("order", order_id)
        return order

    def _change(self, order_id, action, keep_answer, announce, **fields):
        """Apply ``action`` (see :meth:`_transition`) and answer the order as
        it then is, read and kept (``keep_answer``) in the change's
        transaction; ``announce(answer)`` names the event that goes with it."""
        answer = {}

        def answer_with_the_change():
            answer.update(order_schema.dump(self._order(order_id)))
            keep_answer(answer)
            self.outbox.add(*announce(answer))

        self._transition(order_id, action, None, answer_with_the_change, **fields)
        return answer

    def _transition(self, order_id, action, announce=None, before_commit=None, **fields):
        """Apply ``action`` and commit, in one conditional UPDATE whose WHERE
        clause is the state machine's rule (orders.domain.TRANSITIONS): of
        two changes racing, such as a payment and an expiry, one wins and
        the other finds the order moved on (409). ``fields`` are set with
        the change; ``announce(order)`` names the event that goes out with
        it, ``(event_type, data)``, written to the outbox in the same
        transaction. Returns the order's id, user, status, total and creation time."""
        changed = self.db.session.execute(
            Order.transition_of_one(action, tuple(sorted(fields))),
            {"order_id": load_id(order_id, "order"), "now": utcnow(),
             **{f"new_{name}": value for name, value in fields.items()}}).one_or_none()
        if changed is None:
            order = self._order(order_id, with_lines=False)  # not found, or:
            self.db.session.rollback()
            next_status(order.id, order.status, action)  # 409 naming its status
            # it reached a status the action applies to only after the UPDATE
            raise Conflict(f"Order {order_id} is changing; try again", "order_busy")
        if announce is not None:
            self.outbox.add(*announce(changed))
        if before_commit is not None:
            before_commit()
        self.db.session.commit()
        self.telemetry.orders.labels(status=changed.status).inc()
        return changed
