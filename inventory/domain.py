"""Inventory's rules, in plain Python: what a reservation's status means,
and what inventory answers about it."""
from dataclasses import asdict, dataclass

RESERVED = "reserved"
FAILED = "failed"
COMMITTED = "committed"
RELEASED = "released"
# the order was cancelled before its reservation request arrived
CANCELLED = "cancelled"

INSUFFICIENT_STOCK = "insufficient_stock"

STOCK_RESERVED = "stock_reserved"
STOCK_RESERVATION_FAILED = "stock_reservation_failed"


@dataclass(frozen=True)
class Shortage:
    product_id: int
    requested: int
    available: int


def answer(order_id, status, reason=None, short=None):
    """The event that answers an order's reservation request, as
    ``(event_type, data)``, or None when the order needs no answer.

    A redelivered request gets the same answer again, so an answer lost
    before it was published is sent on the next delivery.
    """
    if status in (RESERVED, COMMITTED, RELEASED):
        return STOCK_RESERVED, {"order_id": order_id}
    if status == FAILED:
        return STOCK_RESERVATION_FAILED, {"order_id": order_id, "reason": reason, "short": short}
    return None


def shortages_as_data(shortages):
    return [asdict(shortage) for shortage in shortages]
