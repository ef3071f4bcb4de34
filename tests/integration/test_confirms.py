"""common.messaging.confirms on the real broker: many green threads publishing with
confirms on one channel, each told what became of its own message."""
import time

import eventlet
import pytest
from amqp.exceptions import MessageNacked, NotFound
from kombu import Connection, Exchange, Queue
from kombu.exceptions import EncodeError, OperationalError
from nameko.amqp.publish import UndeliverableMessage

from common.messaging.confirms import confirmed_channel
from tests.conftest import free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

EXCHANGE = Exchange("confirms-probe", type="topic", durable=False, auto_delete=True)


@pytest.fixture
def probe(rabbit_config):
    """A queue that takes ``probe.*``, and a way to read what it got."""
    queue = Queue("confirms-probe", EXCHANGE, routing_key="probe.*", durable=False,
                  auto_delete=True)
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        queue(connection.default_channel).declare()

        def received():
            bound = queue(connection.default_channel)
            payloads = []
            while (message := bound.get(no_ack=True)) is not None:
                payloads.append(message.payload)
            return payloads

        yield received


@pytest.fixture
def shared(rabbit_config):
    return confirmed_channel(rabbit_config["AMQP_URI"])


def publish(shared, number, routing_key="probe.n", **options):
    shared.publish({"n": number}, exchange=EXCHANGE.name, routing_key=routing_key,
                   serializer="json", **options)


def outcome(thread):
    try:
        thread.wait()
    except Exception as exc:
        return type(exc)
    return "acked"


def test_publishes_from_many_green_threads_are_each_confirmed(shared, probe):
    threads = [eventlet.spawn(publish, shared, number) for number in range(200)]
    assert [outcome(thread) for thread in threads] == ["acked"] * 200
    assert sorted(message["n"] for message in probe()) == list(range(200))


def test_each_unroutable_mandatory_publish_among_routable_ones_is_undeliverable(
        shared, probe):
    # every third message goes where no queue is bound
    def routing_key(number):
        return "nowhere.n" if number % 3 == 0 else "probe.n"

    threads = [eventlet.spawn(publish, shared, number, routing_key(number), mandatory=True)
               for number in range(90)]
    outcomes = [outcome(thread) for thread in threads]
    assert outcomes == [UndeliverableMessage if number % 3 == 0 else "acked"
                        for number in range(90)]
    assert sorted(message["n"] for message in probe()) == [
        number for number in range(90) if number % 3]


def test_a_message_the_broker_refuses_is_nacked_and_the_next_goes_on_a_new_channel(
        shared, probe, rabbit_config):
    full = Queue("confirms-full", EXCHANGE, routing_key="full.*", durable=False,
                 auto_delete=True,
                 queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        full(connection.default_channel).declare()
        publish(shared, 1)
        refused = shared.link
        with pytest.raises(MessageNacked):
            publish(shared, 2, "full.n", retry=False)
        publish(shared, 3)
        assert shared.link is not refused
        wait_for(lambda: refused.error is not None)  # closed once nothing waits on it
        # a retried publish is nacked again on each new channel, then raised
        with pytest.raises(MessageNacked):
            publish(shared, 4, "full.n", retry_policy={
                "max_retries": 2, "interval_start": 0, "interval_step": 0, "interval_max": 0})
        assert probe() == [{"n": 1}, {"n": 3}]


def test_an_error_that_closes_the_channel_is_raised_and_the_next_publish_reconnects(
        shared, probe):
    with pytest.raises(NotFound):
        shared.publish({"n": 1}, exchange="no-such-exchange", routing_key="probe.n")
    publish(shared, 2)
    assert probe() == [{"n": 2}]


def test_a_connection_the_broker_closes_is_made_again(shared, probe, rabbit_manager):
    publish(shared, 1)
    lost = shared.link
    port = lost.connection.connection.sock.getsockname()[1]
    wait_for(lambda: any(c["peer_port"] == port for c in rabbit_manager.get_connections()))
    [name] = [c["name"] for c in rabbit_manager.get_connections() if c["peer_port"] == port]

    # publishes in flight when the connection goes are retried on a new one
    threads = [eventlet.spawn(publish, shared, number) for number in range(2, 52)]
    rabbit_manager.delete_connection(name)
    assert [outcome(thread) for thread in threads] == ["acked"] * 50
    wait_for(lambda: lost.error is not None)
    publish(shared, 52)

    assert shared.link is not lost
    # at least once: a message whose ack was lost with the connection goes again
    assert set(message["n"] for message in probe()) == set(range(1, 53))


def test_a_publish_that_fails_raises_its_own_error_and_the_next_goes_through(shared, probe):
    with pytest.raises(EncodeError):
        shared.publish({"n": object()}, exchange=EXCHANGE.name, routing_key="probe.n",
                       serializer="json")
    publish(shared, 2)
    assert probe() == [{"n": 2}]


def dead_node(amqp_uri):
    """The URI with a port nobody listens on."""
    return amqp_uri.replace(":5672/", f":{free_port()}/")


def test_a_broker_that_cannot_be_reached_is_raised_after_the_policys_retries(
        rabbit_config):
    shared = confirmed_channel(dead_node(rabbit_config["AMQP_URI"]))
    started = time.monotonic()
    with pytest.raises(OperationalError):
        publish(shared, 1, retry_policy={
            "max_retries": 2, "interval_start": 0.2, "interval_step": 0, "interval_max": 0.2})
    assert time.monotonic() - started >= 0.4
    with pytest.raises(OperationalError):
        publish(shared, 2, retry=False)


def test_a_failover_uri_publishes_through_the_next_node(rabbit_config, probe):
    uri = rabbit_config["AMQP_URI"]
    shared = confirmed_channel(f"{dead_node(uri)};{uri}")
    publish(shared, 1, retry=False)
    assert probe() == [{"n": 1}]
