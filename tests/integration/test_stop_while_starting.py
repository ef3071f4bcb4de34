"""A service stopped while it starts (a SIGTERM as it comes up) stops: every
service has several consumers on one queue consumer (its RPC queue, its
reply queue, its event handlers), and nameko's hung when they all
unregistered before the broker had answered."""
import eventlet
import pytest
from nameko.events import EventHandler

from gateway.service import GatewayService
from inventory.service import InventoryService
from orders.service import OrdersService

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service_cls", [InventoryService, OrdersService, GatewayService])
def test_a_service_stopped_while_starting_stops(container_factory, shop_config, service_cls):
    container = container_factory(service_cls, shop_config)
    consumer = queue_consumer_of(container)
    starting = eventlet.spawn(container.start)
    while not consumer._starting:  # set up, and connecting to the broker
        eventlet.sleep(0)
    assert not consumer._consumers_ready.ready()
    with eventlet.Timeout(10, AssertionError("the stop did not end")):
        container.stop()
        starting.wait()


def queue_consumer_of(container):
    """The queue consumer the service's event handlers share (with its RPC
    queue and reply queue, in a domain service)."""
    handler = next(e for e in container.entrypoints if isinstance(e, EventHandler))
    return handler.queue_consumer
