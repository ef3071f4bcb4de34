"""The queues a service declares on the real broker: its durable ones are
quorum queues, and a classic one left by an older version stops it with one
clear error."""
import pytest
from kombu import Connection, Exchange, Queue

from common.messaging.queues import WrongQueueType
from common.messaging.retry import REDELIVERY_LIMIT
from inventory.service import InventoryService
from orders.service import OrdersService
from tests.helpers import wait_for
from tools.queues import Broker, migrate

pytestmark = pytest.mark.integration


def queue_types(rabbit_manager, vhost):
    return {queue["name"]: queue["type"] for queue in rabbit_manager.get_queues(vhost)}


def queues(rabbit_manager, vhost):
    return {queue["name"]: queue for queue in rabbit_manager.get_queues(vhost)}


def message_count(rabbit_config, name):
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        return connection.default_channel.queue_declare(name, passive=True).message_count


def test_a_service_declares_quorum_queues_and_keeps_its_reply_queue_classic(
        container_factory, shop_config, rabbit_manager, rabbit_config):
    container_factory(OrdersService, shop_config).start()  # it calls products: a reply queue
    vhost = rabbit_config["vhost"]
    wait_for(lambda: "rpc-orders" in queue_types(rabbit_manager, vhost))
    types = queue_types(rabbit_manager, vhost)

    durable = {name: kind for name, kind in types.items() if not name.startswith("rpc.reply-")}
    assert "rpc-orders" in durable and "shop.dead-letters" in durable
    assert "evt-inventory-stock_reserved--orders.on_stock_reserved" in durable
    assert set(durable.values()) == {"quorum"}, durable
    # a reply queue ends with its connection: on a cluster, one on a dead
    # node must not block its caller from declaring it again on another
    replies = [queue for name, queue in queues(rabbit_manager, vhost).items()
               if name.startswith("rpc.reply-")]
    assert replies and all(queue["type"] == "classic" and queue["exclusive"]
                           and not queue["durable"] for queue in replies), replies


def test_a_classic_queue_from_an_older_version_stops_the_service_with_one_line(
        container_factory, shop_config, rabbit_config):
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        Queue("rpc-inventory", durable=True)(connection.default_channel).declare()

    container = container_factory(InventoryService, shop_config)
    with pytest.raises(WrongQueueType) as failure:
        container.start()
    message = str(failure.value)
    assert "'rpc-inventory'" in message and "make migrate-queues" in message
    assert "x-queue-type" in message and "\n" not in message


def test_migrate_queues_moves_classic_queues_with_their_messages_and_bindings(
        container_factory, shop_config, rabbit_manager, rabbit_config):
    vhost = rabbit_config["vhost"]
    handler = "evt-orders-order_paid--inventory.on_order_paid"
    broadcast = "evt-orders-order_paid--gateway.on_order_paid-1"
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        channel = connection.default_channel
        events = Exchange("orders.events", type="topic", durable=True)
        Queue(handler, exchange=events, routing_key="order_paid", durable=True)(channel).declare()
        # a gateway's event queue of an older version: its process's own, left alone
        Queue(broadcast, exchange=events, routing_key="order_paid", durable=True,
              auto_delete=True)(channel).declare()
        producer = connection.Producer(channel)
        for number in range(3):
            producer.publish({"n": number}, exchange=events, routing_key="order_paid")

    broker = Broker(rabbit_config["AMQP_URI"], management_url="http://127.0.0.1:15672")
    try:
        migrate(broker, say=lambda line: None)
    finally:
        broker.close()

    queue = rabbit_manager.get_queue(vhost, handler)
    assert queue["type"] == "quorum"
    assert queue["arguments"]["x-delivery-limit"] == REDELIVERY_LIMIT
    assert message_count(rabbit_config, handler) == 3
    with Connection(rabbit_config["AMQP_URI"],
                    transport_options={"confirm_publish": True}) as connection:
        bound = Exchange("orders.events", type="topic", durable=True)
        connection.Producer().publish({"n": 3}, exchange=bound, routing_key="order_paid",
                                      retry=False)
    assert message_count(rabbit_config, handler) == 4  # still bound
    types = queue_types(rabbit_manager, vhost)
    assert not any(name.endswith(".migrating") for name in types)
    assert types[broadcast] == "classic"
    # the service now starts on it (its handler then takes the four messages)
    container_factory(InventoryService, shop_config).start()
