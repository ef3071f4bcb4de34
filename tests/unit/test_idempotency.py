"""Idempotency keys in the orders service: replay, another request's key,
a key in use, a concurrent request that commits first, expiry and pruning,
with a real database."""
from datetime import timedelta
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import func, insert, select

from common.data.db import utcnow
from common.errors import (
    Conflict, IdempotencyKeyReused, InvalidInput, NotFound, RequestInProgress)
from common.messaging.events import envelope
from orders import idempotency
from orders.idempotency import IdempotencyKeys
from orders.models import IdempotencyKey, Order
from orders.service import OrdersService

UPDATED = "2026-11-01T10:00:00+00:00"
CATALOGUE = [{"id": 1, "name": "Cup", "price": "2.50", "description": "", "updated_at": UPDATED},
             {"id": 2, "name": "Pot", "price": "19.99", "description": "", "updated_at": UPDATED}]
ALICE, BOB = 10, 11
CUP = [{"product_id": 1, "quantity": 1}]
TTL = timedelta(hours=24)


def idempotency_keys():
    """The real provider, set up as its container would."""
    keys = IdempotencyKeys()
    keys.container = type("Container", (), {"config": {}})()
    keys.setup()
    return keys


@pytest.fixture
def service(db):
    service = worker_factory(
        OrdersService, db=db("orders"), config={"RESERVATION_TTL_SECONDS": 900},
        idempotency_keys=idempotency_keys())
    service.products.get_many.side_effect = lambda ids: [p for p in CATALOGUE if p["id"] in ids]
    service.payments.charge.return_value = "pay_1"
    return service


def orders_count(service):
    return service.db.session.scalar(select(func.count(Order.id)))


def keys(service):
    return service.db.session.scalars(select(IdempotencyKey)).all()


def reserved(service, order):
    service.on_stock_reserved(envelope("inventory", "stock_reserved", {"order_id": order["id"]}))
    return order


def committed_elsewhere(service, user_id, key, request, answer):
    """The key as a request on another instance committed it."""
    now = utcnow()
    service.db.session.execute(insert(IdempotencyKey).values(
        user_id=user_id, key=key, fingerprint=request, answer=answer,
        created_at=now, expires_at=now + TTL))
    service.db.session.commit()


def test_a_retry_with_the_key_is_answered_as_the_first_request_and_places_nothing(service):
    first = service.place_order(ALICE, CUP, idempotency_key="k-1")
    again = service.place_order(ALICE, CUP, idempotency_key="k-1")
    assert first["replayed"] is False and again["replayed"] is True
    assert again["result"] == first["result"] and first["result"]["status"] == "pending"
    # the retry placed its order again, then found the key used: rolled back
    assert service.db.session.scalars(select(Order.id)).all() == [first["result"]["id"]]
    [kept] = keys(service)
    assert (kept.user_id, kept.key, kept.answer) == (ALICE, "k-1", first["result"])


def test_without_a_key_the_answer_is_the_order_itself(service):
    assert service.place_order(ALICE, CUP)["status"] == "pending"
    assert keys(service) == []


def test_the_key_with_another_body_is_refused_and_places_nothing(service):
    service.place_order(ALICE, CUP, idempotency_key="k-1")
    with pytest.raises(IdempotencyKeyReused) as refused:
        service.place_order(ALICE, [{"product_id": 2, "quantity": 1}], idempotency_key="k-1")
    assert refused.value.status == 422
    assert orders_count(service) == 1


def test_a_key_belongs_to_its_user(service):
    alices = service.place_order(ALICE, CUP, idempotency_key="shared")
    bobs = service.place_order(BOB, CUP, idempotency_key="shared")
    assert not bobs["replayed"] and bobs["result"]["id"] != alices["result"]["id"]
    assert orders_count(service) == 2


def test_a_retry_while_this_instance_carries_the_request_out_is_refused_for_now(service):
    request = idempotency.KeyedRequest(ALICE, "k-1", idempotency.fingerprint(
        "place_order", {"items": CUP}))
    with service.idempotency_keys.in_progress(request):
        with pytest.raises(RequestInProgress) as busy:
            service.place_order(ALICE, CUP, idempotency_key="k-1")
    assert busy.value.status == 409 and busy.value.retry_after == 1
    assert orders_count(service) == 0
    assert service.place_order(ALICE, CUP, idempotency_key="k-1")["replayed"] is False


def test_a_request_whose_key_another_instance_commits_first_replays_its_answer(service):
    """Both instances carried the request out; the key lets one commit."""
    request = idempotency.fingerprint("place_order", {"items": CUP})
    theirs = {"id": 99, "status": "pending"}

    def product_lookup_while_the_other_instance_commits(ids):
        committed_elsewhere(service, ALICE, "k-1", request, theirs)
        return [p for p in CATALOGUE if p["id"] in ids]

    service.products.get_many.side_effect = product_lookup_while_the_other_instance_commits
    placed = service.place_order(ALICE, CUP, idempotency_key="k-1")
    assert placed == {"result": theirs, "replayed": True}
    assert orders_count(service) == 0  # this instance's order was rolled back


def test_an_expired_key_is_a_new_request(service):
    now = utcnow()
    service.db.session.execute(insert(IdempotencyKey).values(
        user_id=ALICE, key="old", fingerprint="another request", answer={"id": 99},
        created_at=now - 2 * TTL, expires_at=now - TTL))
    service.db.session.commit()
    placed = service.place_order(ALICE, CUP, idempotency_key="old")
    assert placed["replayed"] is False and placed["result"]["id"] != 99
    [kept] = keys(service)
    assert kept.answer == placed["result"] and kept.expires_at > now


def test_a_request_that_fails_keeps_no_key(service):
    with pytest.raises(InvalidInput):
        service.place_order(ALICE, [{"product_id": 7, "quantity": 1}], idempotency_key="k-1")
    assert keys(service) == []
    order = service.place_order(ALICE, CUP, idempotency_key="k-2")["result"]
    with pytest.raises(Conflict):  # not reserved yet
        service.pay_order(order["id"], ALICE, idempotency_key="pay-1")
    assert [key.key for key in keys(service)] == ["k-2"]
    reserved(service, order)
    assert service.pay_order(order["id"], ALICE, idempotency_key="pay-1")["result"]["status"] == "paid"


def test_a_payment_retried_with_its_key_is_replayed_and_charged_once(service):
    order = reserved(service, service.place_order(ALICE, CUP))
    first = service.pay_order(order["id"], ALICE, idempotency_key="pay-1")
    again = service.pay_order(order["id"], ALICE, idempotency_key="pay-1")
    assert again == {"result": first["result"], "replayed": True}
    assert first["result"]["status"] == "paid"
    service.payments.charge.assert_called_once()
    with pytest.raises(IdempotencyKeyReused):  # the same key for another order
        service.cancel_order(order["id"], ALICE, idempotency_key="pay-1")


def test_a_payment_whose_key_another_instance_commits_first_charges_once(service):
    """Both instances charged with the order's provider key, so the provider
    charged once; the one that commits second replays, and refunds nothing."""
    order = reserved(service, service.place_order(ALICE, CUP))
    request = idempotency.fingerprint("pay_order", {"order_id": order["id"]})
    theirs = {"id": order["id"], "status": "paid"}

    def charge_while_the_other_instance_commits(order_id, amount, idempotency_key):
        service.db.session.execute(Order.__table__.update().values(
            status="paid", payment_id="pay_1", version=Order.version + 1))
        service.db.session.commit()
        committed_elsewhere(service, ALICE, "pay-1", request, theirs)
        return "pay_1"

    service.payments.charge.side_effect = charge_while_the_other_instance_commits
    paid = service.pay_order(order["id"], ALICE, idempotency_key="pay-1")
    assert paid == {"result": theirs, "replayed": True}
    service.payments.refund.assert_not_called()


def test_a_cancellation_retried_with_its_key_is_replayed(service):
    order = service.place_order(ALICE, CUP)
    first = service.cancel_order(order["id"], ALICE, idempotency_key="cancel-1")
    again = service.cancel_order(order["id"], ALICE, idempotency_key="cancel-1")
    assert first["result"]["status"] == "cancelled" and again["replayed"] is True
    assert again["result"] == first["result"]
    with pytest.raises(NotFound):  # another user's key space, and not their order
        service.cancel_order(order["id"], BOB, idempotency_key="cancel-1")


@pytest.mark.parametrize("key", ["", " padded", "x" * 256, "naïve", "line\n", 42])
def test_a_key_that_is_not_printable_ascii_is_invalid(service, key):
    with pytest.raises(InvalidInput) as invalid:
        service.place_order(ALICE, CUP, idempotency_key=key)
    assert list(invalid.value.details) == ["Idempotency-Key"]
    assert orders_count(service) == 0


def test_expired_keys_are_pruned_in_batches(service):
    now = utcnow()
    expired = idempotency.PRUNE_BATCH_SIZE + 5
    service.db.session.execute(insert(IdempotencyKey), [
        {"user_id": ALICE, "key": f"old-{n}", "fingerprint": "f", "answer": {},
         "created_at": now - 2 * TTL, "expires_at": now - TTL} for n in range(expired)])
    service.db.session.commit()
    service.place_order(ALICE, CUP, idempotency_key="fresh")
    service.prune_idempotency_keys()
    assert [key.key for key in keys(service)] == ["fresh"]
    assert idempotency.kept(service.db.session) == 1
