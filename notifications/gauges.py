"""What the notifications service counts in its database when Prometheus scrapes.

A mail owed is normally sent within a second of its event. One left unsent
for minutes tells of an SMTP server that is down or refuses the shop's
login, or of events in the dead letters: the alert ``ShopMailFailing``
(deploy/prometheus/rules/shop.yml) fires on it. A mail the server refused
for good (a 5xx answer: an unknown address) is not counted: no wait will
send it.
"""
from common.data.db import waiting_rows
from common.observability.telemetry import DatabaseGauges
from notifications.models import Mail


class MailGauges(DatabaseGauges):
    documentation = {
        "shop_mails_unsent": "Mails owed to customers and not yet accepted by the SMTP server",
        "shop_mails_unsent_oldest_seconds":
            "How long the oldest unsent mail has been owed; 0 when none is"}

    def read(self, session):
        unsent, oldest_seconds = waiting_rows(
            session, Mail.first_attempt_at, Mail.sent_at.is_(None), Mail.refused_at.is_(None))
        return {"shop_mails_unsent": unsent, "shop_mails_unsent_oldest_seconds": oldest_seconds}
