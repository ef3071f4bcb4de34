"""common.messaging.publisher on the real broker: what nameko's Publisher would send,
through a pool of producers looked up once."""
import pytest
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import UndeliverableMessage

from common.messaging.publisher import PooledPublisher, producer_pool

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(rabbit_config):
    exchange = Exchange("publisher-probe", type="topic", durable=False, auto_delete=True)
    probe = Queue("publisher-probe", exchange, routing_key="probe.#", durable=False,
                  auto_delete=True)
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        probe(connection.default_channel).declare()
        yield exchange, probe, connection


def received(connection, queue):
    message = queue(connection.default_channel).get(no_ack=True)
    assert message is not None, "nothing was published to the queue"
    return message


def test_it_sends_the_payload_with_the_publishers_and_the_calls_options(rabbit_config, queue):
    exchange, probe, connection = queue
    publisher = PooledPublisher(rabbit_config["AMQP_URI"], expiration=5,  # seconds
                                delivery_mode=1, headers={"from": "publisher", "kept": "yes"})
    publisher.publish({"n": 1}, exchange=exchange, routing_key="probe.one",
                      headers={"from": "call"}, extra_headers={"extra": "1"},
                      correlation_id="c-1")

    message = received(connection, probe)
    assert message.payload == {"n": 1}
    assert message.headers == {"from": "call", "kept": "yes", "extra": "1"}
    assert message.properties["correlation_id"] == "c-1"
    assert message.properties["expiration"] == "5000"
    assert message.properties["delivery_mode"] == 1


def test_a_mandatory_message_no_queue_takes_is_undeliverable(rabbit_config, queue):
    exchange, _probe, _connection = queue
    publisher = PooledPublisher(rabbit_config["AMQP_URI"], mandatory=True)
    with pytest.raises(UndeliverableMessage):
        publisher.publish({"n": 2}, exchange=exchange, routing_key="nowhere")


def test_publishers_share_one_pool_per_broker_and_confirm_mode(rabbit_config, queue):
    exchange, probe, connection = queue
    uri = rabbit_config["AMQP_URI"]
    assert producer_pool(uri, True) is producer_pool(uri, True)
    assert producer_pool(uri, True) is not producer_pool(uri, False)
    for number in range(3):
        PooledPublisher(uri).publish({"n": number}, exchange=exchange, routing_key="probe.n")
    assert [received(connection, probe).payload["n"] for _ in range(3)] == [0, 1, 2]
