"""The outbox against the real broker and database: an event leaves only with
its transaction's commit, from the worker that committed it, and waits,
without being lost, for a queue to exist; sent events are pruned after
their retention."""
import re
from datetime import timedelta

import pytest
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from sqlalchemy import insert, select

from common.data.db import Database, session_factory, utcnow
from common.messaging import outbox as outbox_module
from common.messaging.events import envelope
from common.messaging.outbox import PRUNE_BATCH_SIZE, Outbox
from common.observability.telemetry import Telemetry, telemetry_of
from inventory.service import InventoryService
from orders.contract import CONTRACT
from orders.models import Base, OutboxMessage
from orders.service import OrdersService
from products.service import ProductsService
from tests.helpers import event_recorder, wait_for

pytestmark = pytest.mark.integration


def announcer(poll_seconds=0.1):
    """A service that writes an ``order_paid`` event to the orders database's
    outbox, its relay polling every ``poll_seconds``."""

    class Announcer:
        name = "orders"
        db = Database(Base)
        outbox = Outbox(OutboxMessage, CONTRACT, poll_seconds=poll_seconds)
        telemetry = Telemetry()

        @rpc
        def announce(self, order_id, commit):
            self.outbox.add("order_paid", {
                "order_id": order_id, "user_id": 1, "total": "9.99",
                "payment_id": f"pay_{order_id}", "items": [
                    {"product_id": 1, "name": "Cup", "quantity": 1, "unit_price": "9.99"}]})
            if commit:
                self.db.session.commit()
            else:
                self.db.session.rollback()

    return Announcer


def outbox_rows(database_engines):
    with session_factory(database_engines["orders"])() as session:
        return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


@pytest.fixture
def recorder(container_factory, shop_config):
    Recorder, received = event_recorder(("orders", "order_paid"))
    container = container_factory(Recorder, shop_config)
    container.start()
    container.received = received
    return container


def test_an_event_is_published_with_its_commit_and_never_without(
        container_factory, shop_config, recorder, database_engines):
    container_factory(announcer(), shop_config).start()
    with ServiceRpcProxy("orders", shop_config, timeout=10) as orders:
        orders.announce(1, commit=False)
        with entrypoint_waiter(recorder, "on_order_paid", timeout=10):
            orders.announce(2, commit=True)

    assert [envelope["data"]["order_id"] for _, envelope in recorder.received] == [2]
    # marked sent just after the broker confirms it
    wait_for(lambda: outbox_rows(database_engines)[0].sent_at is not None)
    [row] = outbox_rows(database_engines)
    assert row.payload["data"]["order_id"] == 2
    assert row.headers["schema-version"] == 2  # order_paid's, in orders' contract


def test_the_worker_that_commits_publishes_without_waiting_for_the_relay(
        container_factory, shop_config, recorder, database_engines):
    container_factory(announcer(poll_seconds=3600), shop_config).start()
    with ServiceRpcProxy("orders", shop_config, timeout=10) as orders:
        for order_id in (4, 5, 6):
            with entrypoint_waiter(recorder, "on_order_paid", timeout=2):
                orders.announce(order_id, commit=True)

    assert [envelope["data"]["order_id"] for _, envelope in recorder.received] == [4, 5, 6]
    wait_for(lambda: all(row.sent_at for row in outbox_rows(database_engines)), timeout=2)
    assert all(row.attempts == 0 for row in outbox_rows(database_engines))


def test_what_was_published_just_before_a_stop_is_marked_sent_at_the_stop(
        container_factory, shop_config, recorder, database_engines, caplog, monkeypatch):
    """The relay marks published rows sent a moment later, in one UPDATE;
    a stop within that moment marks them as it ends, although the Database
    dependency stops beside the outbox."""
    monkeypatch.setattr(outbox_module, "MARK_DELAY_SECONDS", 2)  # the stop comes within it
    announcing = container_factory(announcer(poll_seconds=3600), shop_config)
    announcing.start()
    with ServiceRpcProxy("orders", shop_config, timeout=10) as orders:
        with entrypoint_waiter(recorder, "on_order_paid", timeout=2):
            orders.announce(9, commit=True)
    announcing.stop()
    assert [row.sent_at is not None for row in outbox_rows(database_engines)] == [True]
    assert "could not mark" not in caplog.text


def outbox_gauges(container):
    """``(backlog, oldest seconds)`` from the service's metrics page."""
    page = telemetry_of(container).metrics.exposition().decode()
    return tuple(float(re.search(rf'^{name}{{service="orders"}} (\S+)$', page, re.MULTILINE)[1])
                 for name in ("shop_outbox_backlog", "shop_outbox_oldest_seconds"))


def test_an_event_with_no_queue_waits_for_one(
        container_factory, shop_config, database_engines):
    announcing = container_factory(announcer(), shop_config)
    announcing.start()
    assert outbox_gauges(announcing) == (0, 0)
    with ServiceRpcProxy("orders", shop_config, timeout=10) as orders:
        orders.announce(3, commit=True)
    wait_for(lambda: outbox_rows(database_engines)[0].attempts >= 1)
    [row] = outbox_rows(database_engines)
    assert row.sent_at is None and row.last_error == "no queue is bound for order_paid"
    # the metrics show it waiting, and for how long
    backlog, waited = outbox_gauges(announcing)
    assert backlog == 1 and waited > 0

    Recorder, received = event_recorder(("orders", "order_paid"))
    recorder = container_factory(Recorder, shop_config)
    with entrypoint_waiter(recorder, "on_order_paid", timeout=15):
        recorder.start()
    assert [envelope["data"]["order_id"] for _, envelope in received] == [3]
    wait_for(lambda: outbox_rows(database_engines)[0].sent_at is not None)
    assert outbox_gauges(announcing) == (0, 0)


def test_orders_placed_before_inventory_ever_ran_are_reserved_when_it_starts(
        runner_factory, container_factory, shop_config):
    runner = runner_factory(shop_config, ProductsService, OrdersService)
    runner.start()
    with ServiceRpcProxy("products", shop_config, timeout=10) as products:
        product = products.create(name="Cup", price="2.00")
    with ServiceRpcProxy("orders", shop_config, timeout=10) as orders:
        order = orders.place_order(3, [{"product_id": product["id"], "quantity": 1}])

        orders_container = get_container(runner, OrdersService)
        # the orders service's metrics show the order waiting for inventory
        waiting = pending_gauges(orders_container)
        assert waiting["shop_orders_pending"] == 1
        assert waiting["shop_orders_pending_oldest_seconds"] > 0

        inventory = container_factory(InventoryService, shop_config)
        with entrypoint_waiter(orders_container, "on_stock_reservation_failed", timeout=15):
            inventory.start()
        # no stock was added: inventory answered, and the answer reached orders
        assert orders.get_order(order["id"])["status"] == "rejected"
    assert pending_gauges(orders_container) == {
        "shop_orders_pending": 0, "shop_orders_pending_oldest_seconds": 0}
    page = telemetry_of(orders_container).metrics.exposition().decode()
    assert 'shop_order_reservation_seconds_count{status="rejected"} 1.0' in page


def pending_gauges(orders_container):
    page = telemetry_of(orders_container).metrics.exposition().decode()
    return {name: float(value) for name, value in re.findall(
        r'^(shop_orders_pending\w*){service="orders"} (\S+)$', page, re.MULTILINE)}


def test_sent_events_past_their_retention_are_pruned_in_batches_while_the_relay_publishes(
        container_factory, shop_config, recorder, database_engines):
    now = utcnow()
    sent_long_ago = now - timedelta(hours=2)
    old = 2 * PRUNE_BATCH_SIZE + 10
    with session_factory(database_engines["orders"])() as session:
        session.execute(insert(OutboxMessage), [
            {"event_type": "order_paid", "payload": {}, "headers": {}, "created_at": sent_long_ago,
             "next_attempt_at": sent_long_ago, "sent_at": sent_long_ago}] * old)
        recent = OutboxMessage(event_type="order_paid", payload={}, headers={}, created_at=now,
                               next_attempt_at=now, sent_at=now - timedelta(minutes=30))
        unsent = OutboxMessage(
            event_type="order_paid", payload=envelope("orders", "order_paid", {"order_id": 8}),
            headers={}, created_at=sent_long_ago, next_attempt_at=sent_long_ago)
        session.add_all([recent, unsent])
        session.commit()
        kept = {recent.id, unsent.id}

    config = {**shop_config, "OUTBOX": {"RETENTION_SECONDS": 3600}}
    with entrypoint_waiter(recorder, "on_order_paid", timeout=10):
        container_factory(announcer(), config).start()

    wait_for(lambda: {row.id for row in outbox_rows(database_engines)} == kept)
    assert [envelope["data"]["order_id"] for _, envelope in recorder.received] == [8]
    # the unsent one was published, and is kept for its own retention from now
    assert all(row.sent_at is not None for row in outbox_rows(database_engines))
