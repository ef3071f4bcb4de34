from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.data.db import UtcDateTime
from common.messaging.outbox import OutboxMessageMixin


class Base(DeclarativeBase):
    pass


class Stock(Base):
    """The units of one product: ``on_hand`` in the warehouse, ``reserved``
    for orders not yet paid. ``available = on_hand - reserved``. The checks
    are the last line of defence; the service's conditional updates keep them."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("reserved >= 0", name="ck_stock_reserved_not_negative"),
        CheckConstraint("on_hand >= reserved", name="ck_stock_reserved_within_on_hand"),
    )

    product_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)

    @property
    def available(self):
        return self.on_hand - self.reserved


class Reservation(Base):
    """What inventory did with one order's stock-reservation request.

    One row per order id, so a redelivered request never reserves twice.
    ``status``: reserved, failed (``reason`` and ``short`` say why), then
    committed (paid) or released (cancelled or expired); ``cancelled`` when
    the order was cancelled before its request arrived, which then reserves
    nothing.
    """

    __tablename__ = "reservations"

    order_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    short: Mapped[list | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lines: Mapped[list["ReservationLine"]] = relationship(
        order_by="ReservationLine.product_id", lazy="selectin")


class ReservationLine(Base):
    __tablename__ = "reservation_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),)

    order_id: Mapped[int] = mapped_column(
        ForeignKey("reservations.order_id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    quantity: Mapped[int]


class OutboxMessage(OutboxMessageMixin, Base):
    """Events waiting to be published (common.messaging.outbox)."""

    __tablename__ = "outbox"
