"""The inventory service's logic, with worker_factory and a real database."""
import pytest
from nameko.testing.services import worker_factory

from common.errors import Conflict, InvalidInput, NotFound
from common.messaging.events import envelope
from common.messaging.retry import InvalidEvent
from inventory.service import InventoryService


@pytest.fixture
def service(db):
    return worker_factory(InventoryService, db=db("inventory"))


def stock(product_id, on_hand, reserved):
    return {"product_id": product_id, "on_hand": on_hand, "reserved": reserved,
            "available": on_hand - reserved}


def request(order_id, *lines):
    return envelope("orders", "stock_reservation_requested", {
        "order_id": order_id, "items": [{"product_id": p, "quantity": q} for p, q in lines]})


def order_event(event_type, order_id):
    return envelope("orders", event_type, {"order_id": order_id, "reason": "cancelled"})


def test_a_product_without_a_record_has_no_stock(service):
    assert service.get_stock(5) == stock(5, 0, 0)
    assert service.get_stocks([5, 3, 5]) == [stock(5, 0, 0), stock(3, 0, 0)]


def test_a_new_product_gets_a_record_once(service):
    created = envelope("products", "product_created", {"id": 4, "name": "Cup", "price": "1.00"})
    service.on_product_created(created)
    service.on_product_created(created)
    service.add_stock(4, 2)
    assert service.get_stock(4) == stock(4, 2, 0)


def test_restock_and_write_off(service):
    assert service.add_stock(1, 10) == stock(1, 10, 0)
    assert service.add_stock(1, 5) == stock(1, 15, 0)
    assert service.remove_stock(1, 15) == stock(1, 0, 0)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", 1_000_001])
def test_stock_changes_need_a_positive_whole_quantity(service, quantity):
    with pytest.raises(InvalidInput):
        service.add_stock(1, quantity)
    with pytest.raises(InvalidInput):
        service.remove_stock(1, quantity)


def test_ids_out_of_range_are_not_found(service):
    with pytest.raises(NotFound):
        service.get_stock(0)
    with pytest.raises(InvalidInput):
        service.get_stock("1")


def test_a_reservation_takes_every_line_and_is_answered(service):
    service.add_stock(1, 5)
    service.add_stock(2, 1)
    service.on_stock_reservation_requested(request(7, (1, 5), (2, 1)))
    assert service.get_stocks([1, 2]) == [stock(1, 5, 5), stock(2, 1, 1)]
    service.outbox.add.assert_called_once_with("stock_reserved", {"order_id": 7})


def test_a_reservation_takes_nothing_when_any_line_is_short(service):
    service.add_stock(1, 5)
    service.add_stock(2, 1)
    service.on_stock_reservation_requested(request(7, (1, 2), (2, 3), (3, 1)))
    assert service.get_stocks([1, 2, 3]) == [stock(1, 5, 0), stock(2, 1, 0), stock(3, 0, 0)]
    service.outbox.add.assert_called_once_with("stock_reservation_failed", {
        "order_id": 7, "reason": "insufficient_stock",
        "short": [{"product_id": 2, "requested": 3, "available": 1},
                  {"product_id": 3, "requested": 1, "available": 0}]})


def test_a_redelivered_request_reserves_once_and_is_answered_again(service):
    service.add_stock(1, 5)
    service.on_stock_reservation_requested(request(7, (1, 2)))
    service.on_stock_reservation_requested(request(7, (1, 2)))
    assert service.get_stock(1) == stock(1, 5, 2)
    assert [c.args for c in service.outbox.add.call_args_list] == [
        ("stock_reserved", {"order_id": 7})] * 2


def test_a_redelivered_failed_request_is_answered_the_same_way_even_after_a_restock(service):
    service.on_stock_reservation_requested(request(7, (1, 2)))
    service.add_stock(1, 5)
    service.on_stock_reservation_requested(request(7, (1, 2)))
    assert service.get_stock(1) == stock(1, 5, 0)
    first, second = service.outbox.add.call_args_list
    assert first == second and first.args[0] == "stock_reservation_failed"


def test_payment_commits_the_reservation_once(service):
    service.add_stock(1, 5)
    service.on_stock_reservation_requested(request(7, (1, 2)))
    service.on_order_paid(order_event("order_paid", 7))
    service.on_order_paid(order_event("order_paid", 7))
    assert service.get_stock(1) == stock(1, 3, 0)
    service.on_order_cancelled(order_event("order_cancelled", 7))  # too late: sold
    assert service.get_stock(1) == stock(1, 3, 0)


def test_cancellation_releases_the_reservation_once(service):
    service.add_stock(1, 5)
    service.on_stock_reservation_requested(request(7, (1, 2)))
    service.on_order_cancelled(order_event("order_cancelled", 7))
    service.on_order_cancelled(order_event("order_cancelled", 7))
    assert service.get_stock(1) == stock(1, 5, 0)


def test_an_expiry_batch_releases_every_reservation_once_in_one_go(service):
    service.add_stock(1, 10)
    service.add_stock(2, 10)
    for order_id, lines in ((7, (1, 2)), (8, (1, 3)), (9, (2, 4))):
        service.on_stock_reservation_requested(request(order_id, lines))
    service.on_order_paid(order_event("order_paid", 9))  # paid: nothing to release
    expired = envelope("orders", "orders_expired", {"order_ids": [7, 8, 9, 10]})

    service.on_orders_expired(expired)
    service.on_orders_expired(expired)

    assert service.get_stock(1) == stock(1, 10, 0)
    assert service.get_stock(2) == stock(2, 6, 0)
    # 10 was never requested: its request, should it come, reserves nothing
    service.on_stock_reservation_requested(request(10, (1, 1)))
    assert service.get_stock(1) == stock(1, 10, 0)


def test_a_request_arriving_after_its_orders_cancellation_reserves_nothing(service):
    service.add_stock(1, 5)
    service.on_order_cancelled(order_event("order_cancelled", 7))
    service.on_stock_reservation_requested(request(7, (1, 2)))
    assert service.get_stock(1) == stock(1, 5, 0)
    service.outbox.add.assert_not_called()


def test_write_off_never_goes_below_reserved(service):
    service.add_stock(1, 5)
    service.on_stock_reservation_requested(request(7, (1, 4)))
    with pytest.raises(Conflict) as refused:
        service.remove_stock(1, 2)
    assert "at most 1" in str(refused.value)
    assert service.remove_stock(1, 1) == stock(1, 4, 4)


@pytest.mark.parametrize("event", [
    request(7, (1, 2), (1, 1)),  # one line per product
    request(8),  # no lines
    request(9, (1, 0)),
])
def test_invalid_requests_are_refused(service, event):
    service.add_stock(1, 5)
    with pytest.raises(InvalidEvent):
        service.on_stock_reservation_requested(event)
    assert service.get_stock(1) == stock(1, 5, 0)
    service.outbox.add.assert_not_called()


@pytest.mark.parametrize("order_ids", [[], [0], ["7"], list(range(1, 1002))])
def test_invalid_expiry_batches_are_refused(service, order_ids):
    service.add_stock(1, 5)
    service.on_stock_reservation_requested(request(7, (1, 2)))
    with pytest.raises(InvalidEvent):
        service.on_orders_expired(envelope("orders", "orders_expired", {"order_ids": order_ids}))
    assert service.get_stock(1) == stock(1, 5, 2)
