"""Stock changes as database statements.

Every change is a conditional UPDATE whose WHERE clause is the rule
(``available >= quantity``, ``status = 'reserved'``): the database checks the
rule and applies the change in one step, so concurrent workers or processes
cannot both pass a check that only one of them may pass. On PostgreSQL the
UPDATE locks the row and re-evaluates the condition after a concurrent
commit; on SQLite writers are serialised.
"""
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from common.data.db import deferred, utcnow
from common.errors import Conflict
from inventory.domain import (
    CANCELLED, COMMITTED, FAILED, INSUFFICIENT_STOCK, RELEASED, RESERVED, Shortage,
    shortages_as_data)
from inventory.models import Reservation, ReservationLine, Stock

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

# A reservation's statements, built once and run as Core: one request per
# order, where building a statement, or a flush's bookkeeping, cost as much
# CPU as running it.
_INSERT_RESERVATION = insert(Reservation.__table__)
_INSERT_RESERVATION_LINES = insert(ReservationLine.__table__)
# a reservation's rows, sent with its first stock UPDATE (see reserve)
_RECORD_INSERTS = {False: (_INSERT_RESERVATION, _INSERT_RESERVATION_LINES),
                 True: (deferred(_INSERT_RESERVATION), deferred(_INSERT_RESERVATION_LINES))}
_stock = Stock.__table__.c
_RESERVE_LINE = (update(Stock.__table__)
                 .where(_stock.product_id == bindparam("line_product_id"),
                        _stock.on_hand - _stock.reserved >= bindparam("quantity"))
                 .values(reserved=_stock.reserved + bindparam("quantity")))


def ensure_records(session, product_ids):
    """A stock record (0 on hand) for each product that has none."""
    insert = _INSERT[session.get_bind().dialect.name]
    session.execute(
        insert(Stock)
        .values([{"product_id": pid, "on_hand": 0, "reserved": 0} for pid in product_ids])
        .on_conflict_do_nothing(index_elements=["product_id"]))


def read(session, product_ids):
    """``{product_id: Stock}``, with an unsaved zero record for a product that has none."""
    # populate_existing: the conditional UPDATEs bypass the objects already loaded
    found = {s.product_id: s for s in session.scalars(
        select(Stock).where(Stock.product_id.in_(product_ids))
        .execution_options(populate_existing=True))}
    return {pid: found.get(pid) or Stock(product_id=pid, on_hand=0, reserved=0)
            for pid in product_ids}


def _change(session, product_id, condition, **values):
    statement = (update(Stock)
                 .where(Stock.product_id == product_id, *condition)
                 .values(**values)
                 .execution_options(synchronize_session=False))
    return session.execute(statement).rowcount == 1


def add(session, product_id, quantity):
    ensure_records(session, [product_id])
    _change(session, product_id, (), on_hand=Stock.on_hand + quantity)
    session.commit()


def remove(session, product_id, quantity):
    """Write units off; never below what is reserved."""
    removed = _change(session, product_id, (Stock.on_hand - quantity >= Stock.reserved,),
                      on_hand=Stock.on_hand - quantity)
    if not removed:
        stock = read(session, [product_id])[product_id]
        session.rollback()
        raise Conflict(
            f"Cannot write off {quantity} of product {product_id}: {stock.on_hand} on hand, "
            f"{stock.reserved} reserved, so at most {stock.available} can go",
            "stock_reserved")
    session.commit()


def reserve(session, order_id, lines):
    """Reserve every line of an order, or none of them.

    Returns the order's reservation (its ``order_id``, ``status``,
    ``reason`` and ``short``): the one made now, or the one an earlier
    delivery of the same request made (nothing is reserved twice). The
    change is not committed: the caller commits it together with its answer.
    """
    try:
        # the row claims the order id: a duplicate request, concurrent or
        # not, fails on it (no query first: duplicates are rare). Its
        # INSERTs go out with the first UPDATE below, which raises their
        # IntegrityError here
        reservation = _record(session, order_id, RESERVED, lines, defer=True)
        shortages = []
        # one lock order for every reservation, so two cannot deadlock
        for product_id, quantity in sorted(lines):
            if session.execute(_RESERVE_LINE, {
                    "line_product_id": product_id, "quantity": quantity}).rowcount != 1:
                available = read(session, [product_id])[product_id].available
                shortages.append(Shortage(product_id, quantity, available))
        if shortages:
            session.rollback()
            reservation = _record(session, order_id, FAILED, lines,
                                  reason=INSUFFICIENT_STOCK, short=shortages_as_data(shortages))
    except IntegrityError:
        session.rollback()
        existing = session.get(Reservation, order_id)
        if existing is None:
            raise  # not a duplicate request: a broken rule, which must not pass silently
        return existing
    return reservation


def settle(session, order_ids, status):
    """Move the reservations of ``order_ids`` from reserved to ``status``:
    COMMITTED takes their units out of stock (the orders are paid), RELEASED
    returns them. Returns the ids settled now; for the others it already
    happened, and nothing changes. One statement per table whatever the
    number of orders (an expiry batch releases hundreds at once).

    An order cancelled before its request arrived leaves a CANCELLED record,
    so that the request, when it comes, reserves nothing.
    """
    for _attempt in range(2):
        claimed = session.execute(
            update(Reservation)
            .where(Reservation.order_id.in_(order_ids), Reservation.status == RESERVED)
            .values(status=status, updated_at=utcnow())
            .returning(Reservation.order_id)
            .execution_options(synchronize_session=False)).scalars().all()
        if claimed:
            units = session.execute(
                select(ReservationLine.product_id, func.sum(ReservationLine.quantity))
                .where(ReservationLine.order_id.in_(claimed))
                .group_by(ReservationLine.product_id)
                .order_by(ReservationLine.product_id))  # the lock order reserve() uses
            for product_id, quantity in units:
                values = {"reserved": Stock.reserved - quantity}
                if status == COMMITTED:
                    values["on_hand"] = Stock.on_hand - quantity
                _change(session, product_id, (), **values)
        try:
            if status == RELEASED:
                unclaimed = set(order_ids) - set(claimed)
                known = set(session.scalars(
                    select(Reservation.order_id).where(Reservation.order_id.in_(unclaimed)))
                    ) if unclaimed else set()
                for order_id in sorted(unclaimed - known):
                    _record(session, order_id, CANCELLED, [])
            session.commit()
            return claimed
        except IntegrityError:
            # a request was reserved meanwhile: release what it reserved
            session.rollback()
    raise RuntimeError(f"could not settle the reservations of orders {order_ids}")


@dataclass(frozen=True)
class Recorded:
    """A reservation as :func:`_record` wrote it."""
    order_id: int
    status: str
    reason: str | None = None
    short: list | None = None


def _record(session, order_id, status, lines, reason=None, short=None, defer=False):
    """Write the order's reservation and its lines. An IntegrityError if the
    order already has one (with ``defer``, raised by the next statement)."""
    insert_reservation, insert_lines = _RECORD_INSERTS[defer]
    now = utcnow()
    # a None left out rather than written: it would be JSON null, not NULL
    why = {name: value for name, value in (("reason", reason), ("short", short))
           if value is not None}
    session.execute(insert_reservation, {
        "order_id": order_id, "status": status, "created_at": now, "updated_at": now, **why})
    if lines:
        session.execute(insert_lines,
                        [{"order_id": order_id, "product_id": p, "quantity": q} for p, q in lines])
    return Recorded(order_id, status, reason, short)
