"""Event handlers against the real broker: a failure is retried with backoff,
then dead-lettered with its reason; an invalid event is dead-lettered at once;
a dead letter can be replayed."""
import pytest
from marshmallow import Schema, fields
from nameko.standalone.events import event_dispatcher

from common.events import envelope, handle_event
from tests.helpers import wait_for
from tools.dlq import DeadLetterQueue

pytestmark = pytest.mark.integration

QUEUE = "evt-orders-order_paid--flaky.on_order_paid"


class PaidSchema(Schema):
    order_id = fields.Integer(required=True, strict=True)


class Flaky:
    """Fails ``failures_left`` times, then records what it handled."""

    name = "flaky"
    failures_left = 0
    handled = []

    @handle_event("orders", "order_paid", PaidSchema())
    def on_order_paid(self, data):
        if Flaky.failures_left:
            Flaky.failures_left -= 1
            raise ConnectionError("the database went away")
        Flaky.handled.append(data)


@pytest.fixture
def flaky(container_factory, shop_config):
    Flaky.failures_left, Flaky.handled = 0, []
    shop_config["EVENT_RETRY"] = {"MAX_ATTEMPTS": 3, "FIRST_DELAY_MS": 100}
    container_factory(Flaky, shop_config).start()
    return Flaky


@pytest.fixture
def send(shop_config):
    dispatch = event_dispatcher(shop_config)
    return lambda data: dispatch("orders", "order_paid", envelope("orders", "order_paid", data))


@pytest.fixture
def dead_letters(rabbit_config):
    def read():
        with DeadLetterQueue(rabbit_config["AMQP_URI"]) as queue:
            return queue.list()
    return read


def test_a_transient_failure_is_retried_until_it_succeeds(flaky, send, dead_letters):
    flaky.failures_left = 2
    send({"order_id": 1})
    wait_for(lambda: flaky.handled)
    assert flaky.handled == [{"order_id": 1}] and flaky.failures_left == 0
    assert dead_letters() == []


def test_a_failure_that_lasts_becomes_a_dead_letter_that_can_be_replayed(
        flaky, send, dead_letters, rabbit_config):
    flaky.failures_left = 3
    send({"order_id": 2})
    wait_for(lambda: dead_letters())
    [letter] = dead_letters()
    assert letter.queue == QUEUE and letter.attempts == 3
    assert letter.reason == "ConnectionError: the database went away"
    assert flaky.handled == []

    with DeadLetterQueue(rabbit_config["AMQP_URI"]) as queue:
        assert [replayed.id for replayed in queue.replay()] == [letter.id]
    wait_for(lambda: flaky.handled)
    assert flaky.handled == [{"order_id": 2}]
    assert dead_letters() == []


def test_an_invalid_event_is_dead_lettered_at_once(flaky, send, dead_letters):
    send({"order_id": "not a number"})
    wait_for(lambda: dead_letters())
    [letter] = dead_letters()
    assert letter.attempts == 1 and letter.reason.startswith("common.retry.InvalidEvent")
    assert flaky.handled == []
