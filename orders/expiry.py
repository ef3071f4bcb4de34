"""Expiry of unpaid orders, as one statement per batch.

A flash sale leaves thousands of orders falling due in the same second.
Expiring them one by one (read, check, write, commit) took a round trip
per step and per order; here one UPDATE expires a whole batch and names
the orders it expired (RETURNING), so the caller announces exactly those.

The rule stays the state machine's (orders.domain.TRANSITIONS["expire"]),
written as the UPDATE's WHERE clause, and the row's ``version`` goes up as
an ORM change would: a payment that read the order before it expired fails
its version check and is refunded (OrdersService.pay_order).

Several orders instances may expire at once. On PostgreSQL each claims its
batch with ``FOR UPDATE SKIP LOCKED``, so they share the work instead of
waiting for each other; the status condition is checked again on the locked
row, so an order is never expired twice. SQLite runs one writer at a time.
"""
from sqlalchemy import select, update

from orders.domain import TRANSITIONS
from orders.models import Order

[(_DUE_STATUS, _EXPIRED_STATUS)] = TRANSITIONS["expire"].items()


def expire_due(session, now, limit):
    """Expire up to ``limit`` orders whose reservation ran out by ``now``,
    the longest overdue first; the ids of those expired (not committed)."""
    due = Order.status == _DUE_STATUS, Order.expires_at <= now
    batch = select(Order.id).where(*due).order_by(Order.expires_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        batch = batch.with_for_update(skip_locked=True)
    # a materialised CTE runs once: as an IN (subquery), PostgreSQL may run
    # the locking subquery again for each row and expire more than ``limit``
    batch = batch.cte("due_orders").prefix_with("MATERIALIZED")
    expired = session.execute(
        update(Order)
        .where(Order.id == batch.c.id, *due)
        .values(status=_EXPIRED_STATUS, updated_at=now, version=Order.version + 1)
        .returning(Order.id)
        .execution_options(synchronize_session=False))
    return expired.scalars().all()
