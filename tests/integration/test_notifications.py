"""The notifications service in a real container, on the real broker and
database, mailing through a real SMTP server (aiosmtpd, tests/smtp_server.py)."""
import email.policy
import re
import time

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import select

from common.data.db import create_db_engine, session_factory
from common.messaging.events import envelope
from common.observability.telemetry import telemetry_of
from notifications.models import Mail
from notifications.service import NotificationsService
from tests.conftest import free_port
from tests.helpers import wait_for
from tests.smtp_server import REFUSED_DOMAIN, SmtpServer
from tools.dlq import DeadLetterQueue
from users.service import UsersService

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp_server(tmp_path):
    server = SmtpServer(tmp_path / "maildir", free_port())
    yield server
    server.stop()


@pytest.fixture
def mail_config(shop_config, smtp_server, tmp_path):
    shop_config["SMTP"] = {"HOST": "127.0.0.1", "PORT": smtp_server.port, "TIMEOUT_SECONDS": 5}
    shop_config["MAIL"] = {"FROM": "The Shop <shop@shop.example>",
                           "DIRECTORY": str(tmp_path / "eml")}
    shop_config["EVENT_RETRY"] = {"MAX_ATTEMPTS": 20, "FIRST_DELAY_MS": 100}
    return shop_config


@pytest.fixture
def notifications(container_factory, mail_config):
    container = container_factory(NotificationsService, mail_config)
    container.start()
    return container


@pytest.fixture
def publish(mail_config):
    dispatch = event_dispatcher(mail_config)

    def publish(event_type, data, source="users"):
        dispatch(source, event_type, envelope(source, event_type, data))
    return publish


@pytest.fixture
def mails(db_uris):
    """The notifications service's mail records, read from its database."""
    engine = create_db_engine(db_uris["notifications"])
    session = session_factory(engine)()

    def read():
        session.rollback()  # a fresh snapshot each time
        return session.scalars(select(Mail)).all()
    yield read
    session.close()
    engine.dispose()


def metrics(container):
    """``{series: value}`` of the service's mail metrics, as Prometheus scrapes
    them: ``shop_mails_unsent`` and ``shop_mails_total{kind="welcome",outcome="sent"}``."""
    page = telemetry_of(container).metrics.exposition().decode()
    return {series.replace('{service="notifications"}', ""): float(value)
            for series, value in re.findall(r"^(shop_mails_\S+) (\S+)$", page, re.MULTILINE)}


def user(user_id, username, address):
    return {"id": user_id, "username": username, "email": address, "role": "customer"}


def handled(container, times=1, entrypoint="on_user_registered"):
    """Waits on exit until ``entrypoint`` ran ``times`` times."""
    runs = []

    def counted(worker_ctx, result, exc_info):
        runs.append(exc_info)
        return len(runs) >= times
    return entrypoint_waiter(container, entrypoint, timeout=15, callback=counted)


def test_a_customer_who_registers_gets_a_welcome_at_their_address(
        container_factory, mail_config, smtp_server, notifications):
    smtp_server.start()
    container_factory(UsersService, mail_config).start()
    with handled(notifications), ServiceRpcProxy("users", mail_config, timeout=10) as users:
        users.register("carol", "carol@example.com", "carol-password")

    [mail] = smtp_server.messages()
    assert mail["X-RcptTo"] == "carol@example.com"
    assert mail["To"] == "carol@example.com"
    assert mail["From"] == "The Shop <shop@shop.example>"
    assert mail["Subject"] == "Welcome to the shop, carol"
    assert mail.get_content_type() == "multipart/alternative"
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert "carol" in parsed.get_body(("html",)).get_content()


def test_each_order_event_mails_its_customer_what_happened(
        smtp_server, notifications, publish, mails):
    smtp_server.start()
    with handled(notifications):
        publish("user_registered", user(12, "ivy", "ivy@example.com"))
    events = [
        ("on_order_paid", "order_paid", {
            "order_id": 50, "user_id": 12, "total": "44.90", "payment_id": "pay_1",
            "items": [{"product_id": 1, "name": "Teapot", "quantity": 1, "unit_price": "24.90"},
                      {"product_id": 2, "name": "<b>Cup</b>", "quantity": 2,
                       "unit_price": "10.00"}]}),
        ("on_order_rejected", "order_rejected", {
            "order_id": 51, "user_id": 12, "reason": "insufficient_stock",
            "short": [{"product_id": 1, "name": "Teapot", "requested": 5, "available": 2}]}),
        ("on_order_cancelled", "order_cancelled",
         {"order_id": 52, "user_id": 12, "reason": "cancelled"}),
        ("on_orders_expired", "orders_expired",
         {"order_ids": [53], "orders": [{"order_id": 53, "user_id": 12}]}),
    ]
    for entrypoint, event_type, data in events:
        with handled(notifications, entrypoint=entrypoint):
            publish(event_type, data, source="orders")

    received = {mail["Subject"]: mail for mail in smtp_server.messages()}
    assert sorted(received) == [
        "Order 51 could not be accepted", "Order 52 is cancelled", "Order 53 expired unpaid",
        "Welcome to the shop, ivy", "Your receipt for order 50"]
    assert {mail["X-RcptTo"] for mail in received.values()} == {"ivy@example.com"}
    receipt = email.message_from_bytes(received["Your receipt for order 50"].as_bytes(),
                                       policy=email.policy.default)
    assert "2 x <b>Cup</b> at 10.00: 20.00" in receipt.get_body(("plain",)).get_content()
    assert "&lt;b&gt;Cup&lt;/b&gt;" in receipt.get_body(("html",)).get_content()
    rejection = email.message_from_bytes(received["Order 51 could not be accepted"].as_bytes(),
                                         policy=email.policy.default)
    assert "Teapot: you asked for 5, we have 2" in rejection.get_body(("plain",)).get_content()
    assert {(record.kind, record.about_id) for record in mails() if record.sent_at} == {
        ("welcome", 12), ("receipt", 50), ("rejection", 51), ("cancellation", 52),
        ("expiry", 53)}


def test_an_event_delivered_twice_sends_one_mail(smtp_server, notifications, publish, mails):
    smtp_server.start()
    with handled(notifications, times=2):
        publish("user_registered", user(7, "dave", "dave@example.com"))
        publish("user_registered", user(7, "dave", "dave@example.com"))

    assert [mail["X-RcptTo"] for mail in smtp_server.messages()] == ["dave@example.com"]
    [record] = mails()
    assert record.sent_at is not None and record.attempts == 1


def test_mail_waits_while_the_smtp_server_is_down_and_arrives_once_when_it_is_back(
        smtp_server, notifications, publish, mails):
    publish("user_registered", user(8, "erin", "erin@example.com"))
    publish("user_registered", user(9, "frank", "frank@example.com"))
    failed = 'shop_mails_total{kind="welcome",outcome="failed"}'
    wait_for(lambda: metrics(notifications).get(failed, 0) >= 4, timeout=20)
    assert all(record.sent_at is None for record in mails())
    waiting = metrics(notifications)
    assert waiting["shop_mails_unsent"] == 2 and waiting["shop_mails_unsent_oldest_seconds"] > 0

    smtp_server.start()
    wait_for(lambda: all(record.sent_at for record in mails()), timeout=30)
    time.sleep(1)  # any retry still in a delay queue would arrive by now

    assert sorted(mail["X-RcptTo"] for mail in smtp_server.messages()) == [
        "erin@example.com", "frank@example.com"]
    assert len({mail["Message-ID"] for mail in smtp_server.messages()}) == 2
    sent = metrics(notifications)
    assert sent["shop_mails_unsent"] == sent["shop_mails_unsent_oldest_seconds"] == 0
    assert sent['shop_mails_total{kind="welcome",outcome="sent"}'] == 2


def test_a_recipient_the_server_refuses_goes_to_the_dead_letters_at_once(
        rabbit_config, smtp_server, notifications, publish, mails):
    smtp_server.start()
    with handled(notifications):
        publish("user_registered", user(10, "gina", f"gina@{REFUSED_DOMAIN}"))

    with DeadLetterQueue(rabbit_config["AMQP_URI"]) as queue:
        [dead] = wait_for_dead_letters(queue)
    assert "550" in dead.reason
    [record] = mails()
    assert (record.attempts, record.sent_at) == (1, None) and record.refused_at is not None
    assert smtp_server.messages() == []
    # no wait sends it: not counted as waiting, so ShopMailFailing does not fire for it
    refused = metrics(notifications)
    assert refused["shop_mails_unsent"] == 0
    assert refused['shop_mails_total{kind="welcome",outcome="refused"}'] == 1


def wait_for_dead_letters(queue):
    deadline = time.monotonic() + 10
    while not (letters := queue.list()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return letters


def test_without_an_smtp_host_mails_are_written_as_eml_files(
        container_factory, mail_config, publish, tmp_path):
    mail_config["SMTP"] = {"HOST": ""}
    container = container_factory(NotificationsService, mail_config)
    container.start()
    with handled(container):
        publish("user_registered", user(11, "hugo", "hugo@example.com"))

    [path] = (tmp_path / "eml").glob("*.eml")
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "hugo@example.com"
    assert parsed["Subject"] == "Welcome to the shop, hugo"


def test_a_mail_dead_lettered_while_the_server_was_down_is_sent_once_by_a_replay(
        rabbit_config, mail_config, container_factory, smtp_server, publish, mails):
    mail_config["EVENT_RETRY"] = {"MAX_ATTEMPTS": 2, "FIRST_DELAY_MS": 100}
    container = container_factory(NotificationsService, mail_config)
    container.start()
    publish("user_registered", user(13, "jane", "jane@example.com"))
    with DeadLetterQueue(rabbit_config["AMQP_URI"]) as queue:
        [dead] = wait_for_dead_letters(queue)
    assert "ConnectionRefusedError" in dead.reason and dead.attempts == 2
    assert smtp_server.messages() == []

    smtp_server.start()
    # what make dlq-replay does, once the server is back
    with handled(container), DeadLetterQueue(rabbit_config["AMQP_URI"]) as queue:
        assert [letter.id for letter in queue.replay()] == [dead.id]

    [mail] = smtp_server.messages()
    assert mail["X-RcptTo"] == "jane@example.com"
    [record] = mails()
    assert record.sent_at is not None and record.attempts == 3
