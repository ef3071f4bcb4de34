"""Event handlers against the real broker: a failure is retried with backoff,
then dead-lettered with its reason; an invalid event is dead-lettered at once;
a dead letter can be replayed."""
import time

import pytest
from kombu import Connection, Queue
from kombu.simple import SimpleQueue
from marshmallow import Schema, fields
from nameko.extensions import DependencyProvider
from nameko.standalone.events import event_dispatcher

from common.messaging.events import envelope, handle_event
from common.messaging.retry import REDELIVERY_LIMIT
from common.observability.telemetry import Telemetry, telemetry_of
from tests.helpers import wait_for
from tools.dlq import DeadLetterQueue

pytestmark = pytest.mark.integration

QUEUE = "evt-orders-order_paid--flaky.on_order_paid"


class PaidSchema(Schema):
    order_id = fields.Integer(required=True, strict=True)


class ContextData(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx.data


class Flaky:
    """Fails ``failures_left`` times, then records what it handled, and the
    context data it handled it with."""

    name = "flaky"
    failures_left = 0
    handled = []
    contexts = []
    context = ContextData()
    telemetry = Telemetry()

    @handle_event("orders", "order_paid", PaidSchema())
    def on_order_paid(self, data):
        if Flaky.failures_left:
            Flaky.failures_left -= 1
            raise ConnectionError("the database went away")
        Flaky.handled.append(data)
        Flaky.contexts.append(dict(self.context))


@pytest.fixture
def flaky_container(container_factory, shop_config):
    Flaky.failures_left, Flaky.handled, Flaky.contexts = 0, [], []
    shop_config["EVENT_RETRY"] = {"MAX_ATTEMPTS": 4, "FIRST_DELAY_MS": 100}
    container = container_factory(Flaky, shop_config)
    container.start()
    return container


@pytest.fixture
def flaky(flaky_container):
    return Flaky


@pytest.fixture
def send(shop_config):
    dispatch = event_dispatcher(shop_config, headers={"nameko.request_id": "request-1"})
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
    # the retry's headers (and RabbitMQ's x-death) do not leak into what the
    # handler sends on: only nameko's own context does
    assert flaky.contexts == [{"request_id": "request-1"}]


def test_each_retry_is_delivered_once_whatever_delay_queues_exist(flaky, send, dead_letters):
    flaky.failures_left = 3  # three retries: 100, 200 and 400 ms, their queues declared
    send({"order_id": 3})
    wait_for(lambda: flaky.handled)
    time.sleep(1)  # long enough for any copy in a longer delay queue to come back
    assert flaky.handled == [{"order_id": 3}]
    assert dead_letters() == []


def test_a_failure_that_lasts_becomes_a_dead_letter_that_can_be_replayed(
        flaky_container, send, dead_letters, rabbit_config):
    flaky = Flaky
    flaky.failures_left = 4
    send({"order_id": 2})
    wait_for(lambda: dead_letters())
    [letter] = dead_letters()
    assert letter.queue == QUEUE and letter.attempts == 4
    assert letter.reason == "ConnectionError: the database went away"
    assert flaky.handled == []
    # the service's metrics count it, and the queue's depth is there to alert on
    metrics = telemetry_of(flaky_container).metrics.exposition().decode()
    assert 'shop_dead_letters{service="flaky"} 1.0' in metrics
    assert ('shop_event_failures_total{outcome="dead_lettered",queue="%s",service="flaky"} 1.0'
            % QUEUE) in metrics

    with DeadLetterQueue(rabbit_config["AMQP_URI"]) as queue:
        assert [replayed.id for replayed in queue.replay()] == [letter.id]
    wait_for(lambda: flaky.handled)
    assert flaky.handled == [{"order_id": 2}]
    assert dead_letters() == []
    metrics = telemetry_of(flaky_container).metrics.exposition().decode()
    assert 'shop_dead_letters{service="flaky"} 0.0' in metrics


def test_an_invalid_event_is_dead_lettered_at_once(flaky, send, dead_letters):
    send({"order_id": "not a number"})
    wait_for(lambda: dead_letters())
    [letter] = dead_letters()
    assert letter.attempts == 1 and letter.reason.startswith("common.messaging.retry.InvalidEvent")
    assert flaky.handled == []


def test_a_message_never_settled_is_dead_lettered_at_the_delivery_limit(
        flaky_container, send, dead_letters, rabbit_config):
    """As when the handler's process dies on it, again and again: here a
    consumer hands it back (requeue) until RabbitMQ gives up on it."""
    flaky_container.stop()  # the handler's quorum queue stays
    send({"order_id": 5})
    returned = 0
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        queue = SimpleQueue(connection, Queue(QUEUE, no_declare=True))
        while True:
            try:
                message = queue.get(timeout=2)
            except queue.Empty:
                break
            message.requeue()
            returned += 1
    assert returned == REDELIVERY_LIMIT + 1  # the first delivery and the redeliveries
    [letter] = dead_letters()
    assert letter.queue == QUEUE
    assert letter.reason.startswith(f"delivered {REDELIVERY_LIMIT} times without being settled")
