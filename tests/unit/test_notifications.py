"""The notifications service's logic, with worker_factory, a real database and
mails written as .eml files (notifications.delivery.DirectoryTransport)."""
import email
import email.policy
import socket
from datetime import timedelta

import pytest
from nameko.exceptions import ConfigurationError
from nameko.testing.services import worker_factory
from sqlalchemy import select

from common.config import settings_section
from common.data.db import utcnow
from common.messaging.events import envelope
from common.messaging.retry import InvalidEvent
from notifications.delivery import DirectoryTransport, Mailer, SmtpTransport
from notifications.mailing import MailInFlight
from notifications.messages import WELCOME, compose
from notifications.models import Customer, Mail
from notifications.service import NotificationsService

SENDER = "The Shop <shop@shop.example>"
HOSTILE = "<script>alert(1)</script>"


def mailer_to(transport):
    mailer = Mailer()
    mailer.sender, mailer.transport, mailer.claim_seconds = SENDER, transport, 40
    return mailer


@pytest.fixture
def outbox(tmp_path):
    return tmp_path / "mail"


@pytest.fixture
def service(db, outbox):
    return worker_factory(NotificationsService, db=db("notifications"),
                          mailer=mailer_to(DirectoryTransport(outbox)))


def written(directory):
    """The mails written to ``directory``, parsed."""
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(directory.glob("*.eml"))]


def registered(user_id=7, username="carol", email_address="carol@example.com"):
    return envelope("users", "user_registered", {
        "id": user_id, "username": username, "email": email_address, "role": "customer"})


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_mail_is_multipart_with_the_headers_a_mail_needs():
    message = compose(WELCOME, {"username": "carol"}, sender=SENDER,
                      recipient="carol@example.com", message_id="<1.2@shop.example>",
                      date=utcnow())
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain", "text/html"]
    assert parsed["From"] == SENDER
    assert parsed["To"] == "carol@example.com"
    assert parsed["Subject"] == "Welcome to the shop, carol"
    assert parsed["Message-ID"] == "<1.2@shop.example>"
    assert parsed["Date"].datetime.tzinfo is not None


def test_the_html_part_shows_markup_in_a_value_as_text():
    message = compose(WELCOME, {"username": HOSTILE}, sender=SENDER,
                      recipient="carol@example.com", message_id="<1@shop.example>",
                      date=utcnow())
    plain, html = (part.get_content() for part in message.iter_parts())
    assert HOSTILE in plain
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_registration_gets_a_welcome_and_the_customer_is_kept(service, outbox):
    service.on_user_registered(registered())

    [mail] = written(outbox)
    assert mail["To"] == "carol@example.com"
    assert mail["Subject"] == "Welcome to the shop, carol"
    assert "carol" in mail.get_body(("plain",)).get_content()
    customer = service.db.session.get(Customer, 7)
    assert (customer.username, customer.email) == ("carol", "carol@example.com")


def test_the_same_registration_delivered_again_mails_nothing_more(service, outbox):
    service.on_user_registered(registered())
    service.on_user_registered(registered())

    assert len(written(outbox)) == 1
    [mail] = service.db.session.scalars(select(Mail)).all()
    assert (mail.kind, mail.about_id, mail.attempts) == (WELCOME, 7, 1)
    assert mail.sent_at is not None
    service.telemetry.mails.labels.assert_any_call(kind=WELCOME, outcome="duplicate")


def test_a_mail_the_server_did_not_take_is_sent_again_with_the_same_message_id(
        db, service, outbox):
    unreachable = settings_section({"SMTP": {"HOST": "127.0.0.1", "PORT": closed_port(),
                                             "TIMEOUT_SECONDS": 2}}, "SMTP")
    failing = worker_factory(NotificationsService, db=db("notifications"),
                             mailer=mailer_to(SmtpTransport(unreachable)))
    with pytest.raises(ConnectionRefusedError):
        failing.on_user_registered(registered())
    failing.db.session.rollback()
    [owed] = failing.db.session.scalars(select(Mail)).all()
    assert (owed.attempts, owed.sent_at) == (1, None)
    message_id = owed.message_id
    failing.db.session.close()
    failing.telemetry.mails.labels.assert_called_with(kind=WELCOME, outcome="failed")

    service.on_user_registered(registered())

    [mail] = written(outbox)
    assert mail["Message-ID"] == message_id
    sent = service.db.session.get(Mail, (WELCOME, 7))
    assert sent.attempts == 2 and sent.sent_at is not None


def test_a_registration_without_an_email_is_refused(service, outbox):
    event = registered()
    del event["data"]["email"]
    with pytest.raises(InvalidEvent):
        service.on_user_registered(event)
    assert written(outbox) == []


def test_an_eml_file_is_never_seen_half_written(outbox):
    transport = DirectoryTransport(outbox)
    message = compose(WELCOME, {"username": "carol"}, sender=SENDER,
                      recipient="carol@example.com", message_id="<a/b@shop.example>",
                      date=utcnow())
    transport.send(message)
    assert [path.name for path in outbox.iterdir()] == ["a_b@shop.example.eml"]


@pytest.mark.parametrize("settings, problem", [
    ({"MAIL": {"FROM": "not an address"}}, "MAIL.FROM"),
    ({"SMTP": {"HOST": "mail.example", "USERNAME": "shop"}}, "SMTP"),
    ({"SMTP": {"PORT": 70000}}, "SMTP.PORT"),
])
def test_invalid_mail_settings_are_named(settings, problem):
    section = next(iter(settings))
    with pytest.raises(ConfigurationError, match=problem):
        settings_section(settings, section)


def test_a_mail_another_delivery_is_sending_is_left_to_it_until_its_claim_runs_out(
        service, outbox):
    session = service.db.session
    session.add(Mail(kind=WELCOME, about_id=7, recipient="carol@example.com",
                     message_id="<claimed@shop.example>", attempts=1, first_attempt_at=utcnow(),
                     claimed_until=utcnow() + timedelta(seconds=30)))
    session.commit()

    with pytest.raises(MailInFlight):
        service.on_user_registered(registered())
    assert written(outbox) == []
    service.telemetry.mails.labels.assert_called_with(kind=WELCOME, outcome="deferred")

    session.get(Mail, (WELCOME, 7)).claimed_until = utcnow() - timedelta(seconds=1)
    session.commit()
    service.on_user_registered(registered())

    [mail] = written(outbox)
    assert mail["Message-ID"] == "<claimed@shop.example>"
    assert session.get(Mail, (WELCOME, 7)).attempts == 2
