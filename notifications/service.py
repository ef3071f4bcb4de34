from common.data.db import Database
from common.messaging.entrypoints import health_check
from common.messaging.events import handle_event
from common.messaging.rpc import ServiceRpc
from common.observability.telemetry import Telemetry
from notifications import customers
from notifications.delivery import Mailer, MailRefused
from notifications.gauges import MailGauges
from notifications.mailing import MailInFlight, send_once
from notifications.messages import CANCELLATION, EXPIRY, RECEIPT, REJECTION, WELCOME
from notifications.models import Base
from notifications.schemas import (
    OrderCancelledSchema, OrderPaidSchema, OrderRejectedSchema, OrderSchema,
    OrdersExpiredSchema, UserRegisteredSchema)

# the outcome a failed mail is counted as, by the first class that matches
FAILURES = ((MailInFlight, "deferred"), (MailRefused, "refused"), (Exception, "failed"))


class NotificationsService:
    """Mails customers what happened, from the other services' events."""

    name = "notifications"

    db = Database(Base)
    mailer = Mailer()
    users = ServiceRpc("users")
    orders = ServiceRpc("orders")
    telemetry = Telemetry(counters={"mails": (
        "shop_mails", "Mails, by kind and outcome: sent, duplicate (sent before), "
        "deferred (being sent by another delivery), refused (for good) or failed",
        ["kind", "outcome"])})

    gauges = MailGauges()

    ping = health_check()

    @handle_event("users", "user_registered", UserRegisteredSchema())
    def on_user_registered(self, user):
        customers.keep(self.db.session, user)
        self._mail(WELCOME, user["id"], user["id"], {})

    @handle_event("orders", "order_paid", OrderPaidSchema())
    def on_order_paid(self, order):
        if order["user_id"] is None or order["items"] is None:
            order = self._order(order["order_id"])
        self._mail(RECEIPT, order["order_id"], order["user_id"], {
            "order_id": order["order_id"], "items": order["items"], "total": order["total"]})

    @handle_event("orders", "order_rejected", OrderRejectedSchema())
    def on_order_rejected(self, order):
        self._mail(REJECTION, order["order_id"], order["user_id"],
                   {"order_id": order["order_id"], "short": order["short"]})

    @handle_event("orders", "order_cancelled", OrderCancelledSchema())
    def on_order_cancelled(self, order):
        if order["user_id"] is None:
            order = self._order(order["order_id"])
        self._mail(CANCELLATION, order["order_id"], order["user_id"],
                   {"order_id": order["order_id"]})

    @handle_event("orders", "orders_expired", OrdersExpiredSchema())
    def on_orders_expired(self, event):
        """One mail per order of the batch. One that fails does not hold up
        the others: the event is retried once all were tried, and the mails
        already sent are not sent again."""
        orders = event["orders"] or [self._order(order_id) for order_id in event["order_ids"]]
        failures = []
        for order in orders:
            try:
                self._mail(EXPIRY, order["order_id"], order["user_id"],
                           {"order_id": order["order_id"]})
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def _order(self, order_id):
        """The order as the orders service has it: for an event from a release
        that did not carry what the mail needs."""
        return OrderSchema().load(self.orders.get_order(order_id))

    def _mail(self, kind, about_id, user_id, context):
        """Send the mail of ``kind`` about ``about_id`` to customer
        ``user_id``, once, counting the outcome; ``context`` gets the
        customer's username."""
        try:
            customer = customers.find(self.db.session, self.users, user_id)
            sent = send_once(self.db.session, self.mailer, kind, about_id, customer.email,
                             {"username": customer.username, **context})
        except Exception as exc:
            outcome = next(name for kind_of_failure, name in FAILURES
                           if isinstance(exc, kind_of_failure))
            self.telemetry.mails.labels(kind=kind, outcome=outcome).inc()
            raise
        self.telemetry.mails.labels(kind=kind, outcome="sent" if sent else "duplicate").inc()
