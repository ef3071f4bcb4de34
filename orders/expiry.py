"""Expiry of unpaid orders, as one statement per batch.

A flash sale leaves thousands of orders falling due in the same second.
Expiring them one by one (read, check, write, commit) took a round trip
per step and per order; here one UPDATE expires a whole batch and names
the orders it expired (RETURNING), so the caller announces exactly those.

The rule stays the state machine's (``Order.transition("expire")``), written
as the UPDATE's WHERE clause, as for every status change: a payment racing
the expiry finds the order expired, and is refunded (OrdersService.pay_order).

Several orders instances may expire at once. On PostgreSQL each claims its
batch with ``FOR UPDATE SKIP LOCKED``, so they share the work instead of
waiting for each other; the status condition is checked again on the locked
row, so an order is never expired twice. SQLite runs one writer at a time.
"""
from sqlalchemy import select, update

from orders.models import Order


def expire_due(session, now, limit):
    """Expire up to ``limit`` orders whose reservation ran out by ``now``,
    the longest overdue first; ``(order id, user id)`` of those expired (not
    committed)."""
    allowed, change = Order.transition("expire", now)
    due = allowed, Order.expires_at <= now
    batch = select(Order.id).where(*due).order_by(Order.expires_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        batch = batch.with_for_update(skip_locked=True)
    # a materialised CTE runs once: as an IN (subquery), PostgreSQL may run
    # the locking subquery again for each row and expire more than ``limit``
    batch = batch.cte("due_orders").prefix_with("MATERIALIZED")
    expired = session.execute(
        update(Order)
        .where(Order.id == batch.c.id, *due)
        .values(**change)
        .returning(Order.id, Order.user_id)
        .execution_options(synchronize_session=False))
    return [tuple(row) for row in expired]
