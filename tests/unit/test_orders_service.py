"""The orders service's logic, with worker_factory and a real database."""
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import update

from common.data.db import utcnow
from common.errors import Conflict, InvalidInput, NotFound, PaymentRequired
from common.messaging.events import envelope
from common.messaging.retry import InvalidEvent
from orders.models import Order
from orders.payments import PaymentDeclined
from orders.service import OrdersService

UPDATED = "2026-11-01T10:00:00+00:00"
CATALOGUE = [{"id": 1, "name": "Cup", "price": "2.50", "description": "", "updated_at": UPDATED},
             {"id": 2, "name": "Pot", "price": "19.99", "description": "", "updated_at": UPDATED}]
ALICE, BOB = 10, 11


@pytest.fixture
def service(db):
    service = worker_factory(
        OrdersService, db=db("orders"), config={"RESERVATION_TTL_SECONDS": 900})
    service.products.get_many.side_effect = lambda ids: [p for p in CATALOGUE if p["id"] in ids]
    service.payments.charge.return_value = "pay_1"
    return service


def inventory_event(event_type, **data):
    return envelope("inventory", event_type, data)


def reserved(service, order):
    service.on_stock_reserved(inventory_event("stock_reserved", order_id=order["id"]))
    return service.get_order(order["id"])


def test_an_order_is_priced_from_one_catalogue_call_and_asks_for_its_stock(service):
    order = service.place_order(ALICE, [
        {"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": 2},
        {"product_id": 2, "quantity": 2}])
    service.products.get_many.assert_called_once_with([2, 1])
    assert order["status"] == "pending" and order["user_id"] == ALICE
    assert order["items"] == [
        {"product_id": 2, "name": "Pot", "quantity": 3, "unit_price": "19.99"},
        {"product_id": 1, "name": "Cup", "quantity": 2, "unit_price": "2.50"}]
    assert order["total"] == "64.97"
    service.outbox.add.assert_called_once_with("stock_reservation_requested", {
        "order_id": order["id"],
        "items": [{"product_id": 2, "quantity": 3}, {"product_id": 1, "quantity": 2}]})


@pytest.mark.parametrize("items", [
    [], [{"product_id": 1, "quantity": 0}], [{"product_id": 1}],
    [{"product_id": 1, "quantity": 1.0}], [{"product_id": 1, "quantity": 1}] * 51])
def test_invalid_items_are_refused_before_anything_is_stored(service, items):
    with pytest.raises(InvalidInput):
        service.place_order(ALICE, items)
    service.outbox.add.assert_not_called()
    assert service.list_orders(ALICE)["total"] == 0


def test_an_unknown_product_is_refused_and_named(service):
    with pytest.raises(InvalidInput) as refused:
        service.place_order(ALICE, [{"product_id": 1, "quantity": 1},
                                    {"product_id": 5, "quantity": 1}])
    assert "5" in str(refused.value)
    service.outbox.add.assert_not_called()


def test_reserved_stock_makes_the_order_payable_once_however_often_it_is_told(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])
    first = reserved(service, order)
    again = reserved(service, order)
    assert first["status"] == again["status"] == "awaiting_payment"
    assert first["expires_at"] == again["expires_at"]
    expires_at = datetime.fromisoformat(first["expires_at"])
    assert timedelta(seconds=890) < expires_at - utcnow() <= timedelta(seconds=900)


def test_a_failed_reservation_rejects_the_order_with_its_reason_and_announces_it(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 3}])
    service.outbox.add.reset_mock()
    short = [{"product_id": 1, "requested": 3, "available": 1}]
    event = inventory_event("stock_reservation_failed", order_id=order["id"],
                            reason="insufficient_stock", short=short)
    service.on_stock_reservation_failed(event)
    service.on_stock_reservation_failed(event)
    rejected = service.get_order(order["id"])
    assert (rejected["status"], rejected["reason"], rejected["short"]) == (
        "rejected", "insufficient_stock", short)
    # once, with the name the customer ordered the product by
    service.outbox.add.assert_called_once_with("order_rejected", {
        "order_id": order["id"], "user_id": ALICE, "reason": "insufficient_stock",
        "short": [{"product_id": 1, "name": "Cup", "requested": 3, "available": 1}]})


def test_an_answer_for_a_cancelled_order_changes_nothing(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])
    service.cancel_order(order["id"], ALICE)
    assert reserved(service, order)["status"] == "cancelled"


def test_an_invalid_event_is_refused(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])
    with pytest.raises(InvalidEvent):
        service.on_stock_reserved(inventory_event("stock_reserved", order_id="x"))
    with pytest.raises(InvalidEvent):
        service.on_stock_reserved({"data": {"order_id": order["id"]}})  # no envelope
    assert service.get_order(order["id"])["status"] == "pending"


def test_paying_charges_the_total_and_announces_it(service):
    order = reserved(service, service.place_order(ALICE, [{"product_id": 2, "quantity": 2}]))
    service.outbox.add.reset_mock()
    paid = service.pay_order(order["id"], ALICE)
    assert paid["status"] == "paid"
    service.payments.charge.assert_called_once_with(
        order["id"], Decimal("39.98"), f"order-{order['id']}-attempt-1")
    service.outbox.add.assert_called_once_with("order_paid", {
        "order_id": order["id"], "user_id": ALICE, "total": "39.98", "payment_id": "pay_1",
        "items": [{"product_id": 2, "name": "Pot", "quantity": 2, "unit_price": "19.99"}]})


def test_a_declined_payment_leaves_the_order_awaiting_payment(service):
    order = reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))
    service.payments.charge.side_effect = PaymentDeclined("card expired")
    with pytest.raises(PaymentRequired) as declined:
        service.pay_order(order["id"], ALICE)
    assert "card expired" in str(declined.value)
    assert service.get_order(order["id"])["status"] == "awaiting_payment"
    # the next try is a new charge for the provider, not the declined one again
    service.payments.charge.side_effect = None
    assert service.pay_order(order["id"], ALICE)["status"] == "paid"
    assert [call.args[2] for call in service.payments.charge.call_args_list] == [
        f"order-{order['id']}-attempt-1", f"order-{order['id']}-attempt-2"]


def test_an_order_cannot_be_paid_before_its_stock_is_reserved(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])
    with pytest.raises(Conflict) as refused:
        service.pay_order(order["id"], ALICE)
    assert "pending" in str(refused.value)
    service.payments.charge.assert_not_called()


def test_a_payment_that_loses_the_race_with_expiry_is_refunded(service):
    order = reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))

    def charge_while_the_order_expires(order_id, amount, idempotency_key):
        session = service.db.session
        session.execute(update(Order).where(Order.id == order_id)
                        .values(status="expired", version=Order.version + 1))
        session.commit()
        return "pay_2"

    service.payments.charge.side_effect = charge_while_the_order_expires
    with pytest.raises(Conflict):
        service.pay_order(order["id"], ALICE)
    service.payments.refund.assert_called_once_with("pay_2")
    assert service.get_order(order["id"])["status"] == "expired"


def test_a_payment_recorded_by_a_concurrent_request_is_not_refunded(service):
    """Two requests pay the same order at once: both charges carry the same
    key, so the provider charged once; the one that loses must not refund it."""
    order = reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))

    def charge_while_the_other_request_records_it(order_id, amount, idempotency_key):
        session = service.db.session
        session.execute(update(Order).where(Order.id == order_id).values(
            status="paid", payment_id="pay_1", version=Order.version + 1))
        session.commit()
        return "pay_1"

    service.payments.charge.side_effect = charge_while_the_other_request_records_it
    with pytest.raises(Conflict):
        service.pay_order(order["id"], ALICE)
    service.payments.refund.assert_not_called()


def test_another_users_order_is_not_found(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])
    for call in (lambda: service.get_order(order["id"], BOB),
                 lambda: service.pay_order(order["id"], BOB),
                 lambda: service.cancel_order(order["id"], BOB)):
        with pytest.raises(NotFound):
            call()
    assert service.get_order(order["id"])["id"] == order["id"]  # an admin's view


def test_cancelling_announces_it_and_cannot_happen_twice(service):
    order = service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])
    service.outbox.add.reset_mock()
    assert service.cancel_order(order["id"], ALICE)["status"] == "cancelled"
    service.outbox.add.assert_called_once_with(
        "order_cancelled", {"order_id": order["id"], "user_id": ALICE, "reason": "cancelled"})
    with pytest.raises(Conflict):
        service.cancel_order(order["id"], ALICE)


def test_only_orders_past_their_time_expire(service):
    due = reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))
    fresh = reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))
    session = service.db.session
    session.execute(update(Order).where(Order.id == due["id"])
                    .values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    service.outbox.add.reset_mock()

    service.expire_orders()
    service.expire_orders()

    assert service.get_order(due["id"])["status"] == "expired"
    assert service.get_order(fresh["id"])["status"] == "awaiting_payment"
    service.outbox.add.assert_called_once_with("orders_expired", {
        "order_ids": [due["id"]], "orders": [{"order_id": due["id"], "user_id": ALICE}]})


def test_a_run_expires_every_due_order_a_batch_at_a_time(service, monkeypatch):
    monkeypatch.setattr("orders.service.EXPIRY_BATCH", 2)
    due = [reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))
           for _ in range(5)]
    session = service.db.session
    session.execute(update(Order).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    service.outbox.add.reset_mock()

    service.expire_orders()

    assert {service.get_order(order["id"])["status"] for order in due} == {"expired"}
    # one event per batch of 2, published as soon as the batch commits
    announced = [call.args for call in service.outbox.add.call_args_list]
    assert [event_type for event_type, _ in announced] == ["orders_expired"] * 3
    assert sorted(order_id for _, data in announced for order_id in data["order_ids"]) == [
        order["id"] for order in due]
    assert service.outbox.publish_committed.call_count == 3


def test_an_expired_order_has_moved_on_like_any_other_change(service):
    order = reserved(service, service.place_order(ALICE, [{"product_id": 1, "quantity": 1}]))
    before = service.db.session.get(Order, order["id"]).version
    service.db.session.execute(update(Order).values(expires_at=utcnow() - timedelta(seconds=1)))
    service.db.session.commit()

    service.expire_orders()

    expired = service.db.session.get(Order, order["id"], populate_existing=True)
    assert (expired.status, expired.version) == ("expired", before + 1)
    assert expired.updated_at > datetime.fromisoformat(order["updated_at"])


def test_own_orders_are_listed_newest_first(service):
    ids = [service.place_order(ALICE, [{"product_id": 1, "quantity": 1}])["id"]
           for _ in range(3)]
    service.place_order(BOB, [{"product_id": 1, "quantity": 1}])
    page = service.list_orders(ALICE, limit=2, offset=0)
    assert [order["id"] for order in page["items"]] == ids[::-1][:2]
    assert page["total"] == 3


def test_every_order_is_listed_newest_first_for_an_admin(service):
    ids = [service.place_order(user, [{"product_id": 1, "quantity": 1}])["id"]
           for user in (ALICE, BOB, ALICE)]
    page = service.list_all_orders(limit=2, offset=1)
    assert [order["id"] for order in page["items"]] == ids[::-1][1:]
    assert {order["user_id"] for order in page["items"]} == {ALICE, BOB}
    assert page["total"] == 3
    with pytest.raises(InvalidInput):
        service.list_all_orders(limit=0)


def product_event(event_type, **data):
    return envelope("products", event_type, data)


def heard_of(service, event_type="product_created", product_id=7, name="Kettle",
             price="39.90", updated_at=UPDATED):
    getattr(service, f"on_{event_type}")(product_event(
        event_type, id=product_id, name=name, price=price, description="",
        created_at=UPDATED, updated_at=updated_at))


def place_one(service, product_id=7):
    return service.place_order(ALICE, [{"product_id": product_id, "quantity": 1}])


def test_a_product_orders_heard_of_is_priced_without_asking_products(service):
    heard_of(service)
    heard_of(service)  # delivered twice
    order = place_one(service)
    assert order["items"] == [
        {"product_id": 7, "name": "Kettle", "quantity": 1, "unit_price": "39.90"}]
    service.products.get_many.assert_not_called()


def test_a_product_not_heard_of_is_asked_for_once_and_kept(service):
    place_one(service, product_id=1)
    place_one(service, product_id=1)
    service.products.get_many.assert_called_once_with([1])


# product_changed, and product_updated from products on 0.2.0
CHANGE_EVENTS = ("product_changed", "product_updated")


@pytest.mark.parametrize("change", CHANGE_EVENTS)
def test_an_update_changes_the_price_and_an_older_one_arriving_late_does_not(service, change):
    heard_of(service, price="39.90", updated_at="2026-11-01T10:00:00+00:00")
    heard_of(service, change, price="35.00", updated_at="2026-11-01T11:00:00+00:00")
    heard_of(service, change, price="37.00", updated_at="2026-11-01T10:30:00+00:00")
    assert place_one(service)["total"] == "35.00"


def test_a_change_heard_twice_from_a_product_on_0_3_0_is_kept_once(service):
    heard_of(service, price="39.90", updated_at="2026-11-01T10:00:00+00:00")
    for change in CHANGE_EVENTS:
        heard_of(service, change, price="35.00", updated_at="2026-11-01T11:00:00+00:00")
    assert place_one(service)["total"] == "35.00"


@pytest.mark.parametrize("change", CHANGE_EVENTS)
def test_a_deleted_product_cannot_be_ordered_even_if_an_older_event_comes_later(service, change):
    heard_of(service)
    service.on_product_deleted(product_event("product_deleted", id=7))
    heard_of(service, change, price="1.00", updated_at="2026-11-02T10:00:00+00:00")
    service.on_product_deleted(product_event("product_deleted", id=8))  # never heard of
    heard_of(service, product_id=8)
    for product_id in (7, 8):
        with pytest.raises(InvalidInput) as error:
            place_one(service, product_id)
        assert error.value.code == "unknown_product"
    service.products.get_many.assert_not_called()


def test_a_product_event_without_a_price_is_refused(service):
    with pytest.raises(InvalidEvent):
        service.on_product_updated(product_event("product_updated", id=7, name="Kettle"))
