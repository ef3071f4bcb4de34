"""An order's rules in plain Python: its state machine, its lines, its total.

::

    pending ──stock reserved──▶ awaiting_payment ──pay──▶ paid
       │  └──stock short──▶ rejected       │ └──TTL passed──▶ expired
       └──cancel──▶ cancelled ◀──cancel────┘
"""
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from common.errors import Conflict, InvalidInput

PENDING = "pending"
AWAITING_PAYMENT = "awaiting_payment"
PAID = "paid"
REJECTED = "rejected"
CANCELLED = "cancelled"
EXPIRED = "expired"

# action -> {status it may happen in: status it leads to}
TRANSITIONS = {
    "reserve": {PENDING: AWAITING_PAYMENT},
    "reject": {PENDING: REJECTED},
    "pay": {AWAITING_PAYMENT: PAID},
    "cancel": {PENDING: CANCELLED, AWAITING_PAYMENT: CANCELLED},
    "expire": {AWAITING_PAYMENT: EXPIRED},
}

MAX_LINE_QUANTITY = 1000


def next_status(order_id, status, action):
    """The status ``action`` leads to from ``status``; a Conflict (409)
    naming the current status when it cannot happen now. (A common error
    class, so that it crosses RPC as itself.)"""
    try:
        return TRANSITIONS[action][status]
    except KeyError:
        raise Conflict(f"Order {order_id} is {status}: it cannot {action} now",
                       "illegal_transition") from None


@dataclass(frozen=True)
class PricedLine:
    product_id: int
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self):
        return self.unit_price * self.quantity


def merge_lines(items):
    """``[{product_id, quantity}]`` with one line per product, in first-seen order."""
    merged = OrderedDict()
    for item in items:
        merged[item["product_id"]] = merged.get(item["product_id"], 0) + item["quantity"]
    too_many = [pid for pid, quantity in merged.items() if quantity > MAX_LINE_QUANTITY]
    if too_many:
        raise InvalidInput(
            f"At most {MAX_LINE_QUANTITY} units of one product per order",
            "invalid_input", {"items": [f"Product {pid}: more than {MAX_LINE_QUANTITY} units."
                                        for pid in too_many]})
    return list(merged.items())


def price_lines(lines, products):
    """The order lines priced from the catalogue (``products``: what products.get_many
    answered). A product missing from it is unknown or deleted: invalid input naming it."""
    catalogue = {product["id"]: product for product in products}
    missing = [pid for pid, _ in lines if pid not in catalogue]
    if missing:
        names = ", ".join(str(pid) for pid in missing)
        raise InvalidInput(
            f"Unknown or deleted product: {names}", "unknown_product",
            {"items": [f"Product {pid} does not exist." for pid in missing]})
    return [PricedLine(pid, catalogue[pid]["name"], quantity, Decimal(catalogue[pid]["price"]))
            for pid, quantity in lines]


def total_of(priced_lines):
    return sum((line.amount for line in priced_lines), Decimal("0.00"))
