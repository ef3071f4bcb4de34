from common.data.db import Database
from common.messaging.entrypoints import health_check
from common.messaging.events import handle_event
from common.observability.telemetry import Telemetry
from notifications import customers
from notifications.delivery import Mailer, MailRefused
from notifications.gauges import MailGauges
from notifications.mailing import MailInFlight, send_once
from notifications.messages import WELCOME
from notifications.models import Base
from notifications.schemas import UserRegisteredSchema

# the outcome a failed mail is counted as, by the first class that matches
FAILURES = ((MailInFlight, "deferred"), (MailRefused, "refused"), (Exception, "failed"))


class NotificationsService:
    """Mails customers what happened, from the other services' events."""

    name = "notifications"

    db = Database(Base)
    mailer = Mailer()
    telemetry = Telemetry(counters={"mails": (
        "shop_mails", "Mails, by kind and outcome: sent, duplicate (sent before), "
        "deferred (being sent by another delivery), refused (for good) or failed",
        ["kind", "outcome"])})

    gauges = MailGauges()

    ping = health_check()

    @handle_event("users", "user_registered", UserRegisteredSchema())
    def on_user_registered(self, user):
        customers.keep(self.db.session, user)
        self._mail(WELCOME, user["id"], user["email"], {"username": user["username"]})

    def _mail(self, kind, about_id, recipient, context):
        try:
            sent = send_once(self.db.session, self.mailer, kind, about_id, recipient, context)
        except Exception as exc:
            outcome = next(name for kind_of_failure, name in FAILURES
                           if isinstance(exc, kind_of_failure))
            self.telemetry.mails.labels(kind=kind, outcome=outcome).inc()
            raise
        self.telemetry.mails.labels(kind=kind, outcome="sent" if sent else "duplicate").inc()
