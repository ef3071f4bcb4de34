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
from notifications.messages import EXPIRY, RECEIPT, WELCOME, compose
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


def order_event(event_type, **data):
    return envelope("orders", event_type, data)


def paid(order_id=42, user_id=7, **data):
    return order_event("order_paid", order_id=order_id, user_id=user_id, total="44.90",
                       payment_id="pay_1", **{"items": [
                           {"product_id": 1, "name": "Teapot", "quantity": 1,
                            "unit_price": "24.90"},
                           {"product_id": 2, "name": HOSTILE, "quantity": 2,
                            "unit_price": "10.00"}], **data})


def mails_about(outbox, subject_start):
    return [mail for mail in written(outbox) if mail["Subject"].startswith(subject_start)]


def test_a_payment_gets_a_receipt_with_each_line_and_the_total(service, outbox):
    service.on_user_registered(registered())
    service.on_order_paid(paid())

    [receipt] = mails_about(outbox, "Your receipt")
    assert receipt["Subject"] == "Your receipt for order 42"
    assert receipt["To"] == "carol@example.com"
    plain = receipt.get_body(("plain",)).get_content()
    assert "1 x Teapot at 24.90: 24.90" in plain
    assert f"2 x {HOSTILE} at 10.00: 20.00" in plain
    assert "Total: 44.90" in plain
    html = receipt.get_body(("html",)).get_content()
    assert "Teapot" in html and "44.90" in html
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_rejection_names_the_products_that_were_short(service, outbox):
    service.on_user_registered(registered())
    service.on_order_rejected(order_event(
        "order_rejected", order_id=43, user_id=7, reason="insufficient_stock",
        short=[{"product_id": 1, "name": "Teapot", "requested": 3, "available": 1}]))

    [rejection] = mails_about(outbox, "Order 43")
    assert rejection["Subject"] == "Order 43 could not be accepted"
    assert "Teapot: you asked for 3, we have 1" in rejection.get_body(("plain",)).get_content()


def test_a_cancellation_and_each_expired_order_of_a_batch_get_a_notice(service, outbox):
    service.on_user_registered(registered())
    service.on_user_registered(registered(8, "dave", "dave@example.com"))
    service.on_order_cancelled(order_event("order_cancelled", order_id=44, user_id=7,
                                           reason="cancelled"))
    service.on_orders_expired(order_event("orders_expired", order_ids=[45, 46], orders=[
        {"order_id": 45, "user_id": 7}, {"order_id": 46, "user_id": 8}]))

    notices = {(mail["To"], mail["Subject"]) for mail in mails_about(outbox, "Order")}
    assert notices == {("carol@example.com", "Order 44 is cancelled"),
                       ("carol@example.com", "Order 45 expired unpaid"),
                       ("dave@example.com", "Order 46 expired unpaid")}


def test_an_expired_order_whose_mail_fails_does_not_hold_up_the_others(
        db, service, outbox):
    service.on_user_registered(registered())
    session = service.db.session
    session.merge(Customer(id=9, username="erin", email="erin@example.com"))
    # another delivery is sending erin's notice: hers waits, carol's goes
    session.add(Mail(kind=EXPIRY, about_id=47, recipient="erin@example.com",
                     message_id="<claimed@shop.example>", attempts=1, first_attempt_at=utcnow(),
                     claimed_until=utcnow() + timedelta(seconds=30)))
    session.commit()

    with pytest.raises(MailInFlight):
        service.on_orders_expired(order_event("orders_expired", order_ids=[47, 48], orders=[
            {"order_id": 47, "user_id": 9}, {"order_id": 48, "user_id": 7}]))
    assert [mail["Subject"] for mail in mails_about(outbox, "Order")] == [
        "Order 48 expired unpaid"]


def test_a_customer_not_heard_of_is_asked_of_users_once_and_kept(service, outbox):
    service.users.get_user.return_value = {
        "id": 7, "username": "carol", "email": "carol@example.com", "role": "customer"}
    service.on_order_paid(paid(42))
    service.on_order_paid(paid(43))

    service.users.get_user.assert_called_once_with(7)
    assert [mail["To"] for mail in mails_about(outbox, "Your receipt")] == [
        "carol@example.com"] * 2


def test_an_event_from_a_release_without_the_customer_is_completed_from_orders(
        service, outbox):
    service.on_user_registered(registered())
    service.orders.get_order.return_value = {
        "id": 42, "user_id": 7, "status": "paid", "total": "24.90", "reason": None,
        "items": [{"product_id": 1, "name": "Teapot", "quantity": 1, "unit_price": "24.90"}]}
    # order_paid as orders 0.2.0 publish it (schema version 1)
    service.on_order_paid(order_event("order_paid", order_id=42, total="24.90",
                                      payment_id="pay_1"))

    service.orders.get_order.assert_called_once_with(42)
    [receipt] = mails_about(outbox, "Your receipt")
    assert "1 x Teapot at 24.90: 24.90" in receipt.get_body(("plain",)).get_content()
    assert service.db.session.get(Mail, (RECEIPT, 42)).sent_at is not None
