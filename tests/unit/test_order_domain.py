"""An order's rules, with no broker and no database."""
from decimal import Decimal

import pytest

from common.errors import Conflict, InvalidInput
from orders.domain import (
    AWAITING_PAYMENT, CANCELLED, EXPIRED, PAID, PENDING, REJECTED, TRANSITIONS, merge_lines,
    next_status, price_lines, total_of)

STATUSES = (PENDING, AWAITING_PAYMENT, PAID, REJECTED, CANCELLED, EXPIRED)
ALLOWED = {
    ("reserve", PENDING): AWAITING_PAYMENT,
    ("reject", PENDING): REJECTED,
    ("pay", AWAITING_PAYMENT): PAID,
    ("cancel", PENDING): CANCELLED,
    ("cancel", AWAITING_PAYMENT): CANCELLED,
    ("expire", AWAITING_PAYMENT): EXPIRED,
}


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
@pytest.mark.parametrize("status", STATUSES)
def test_the_state_machine_allows_exactly_its_transitions(action, status):
    if (action, status) in ALLOWED:
        assert next_status(7, status, action) == ALLOWED[(action, status)]
    else:
        with pytest.raises(Conflict) as refused:
            next_status(7, status, action)
        assert refused.value.code == "illegal_transition"
        assert str(refused.value) == f"Order 7 is {status}: it cannot {action} now"


def test_final_states_have_no_way_out():
    for status in (PAID, REJECTED, CANCELLED, EXPIRED):
        assert not any(status in moves for moves in TRANSITIONS.values())


def test_duplicate_lines_are_merged_in_first_seen_order():
    items = [{"product_id": 3, "quantity": 1}, {"product_id": 1, "quantity": 2},
             {"product_id": 3, "quantity": 4}]
    assert merge_lines(items) == [(3, 5), (1, 2)]


def test_merged_lines_still_respect_the_quantity_limit():
    with pytest.raises(InvalidInput) as refused:
        merge_lines([{"product_id": 3, "quantity": 600}, {"product_id": 3, "quantity": 401}])
    assert refused.value.details == {"items": ["Product 3: more than 1000 units."]}


def test_lines_are_priced_from_the_catalogue_and_totalled_exactly():
    catalogue = [{"id": 1, "name": "Cup", "price": Decimal("0.10")},
                 {"id": 2, "name": "Pot", "price": Decimal("19.99")}]
    priced = price_lines([(1, 3), (2, 2)], catalogue)
    assert [(line.name, line.amount) for line in priced] == [
        ("Cup", Decimal("0.30")), ("Pot", Decimal("39.98"))]
    assert total_of(priced) == Decimal("40.28")


def test_a_product_missing_from_the_catalogue_is_named():
    with pytest.raises(InvalidInput) as refused:
        price_lines([(1, 1), (8, 1), (9, 2)], [{"id": 1, "name": "Cup", "price": Decimal(1)}])
    assert refused.value.code == "unknown_product"
    assert str(refused.value) == "Unknown or deleted product: 8, 9"
