from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Index, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.data.db import Money, UtcDateTime
from common.messaging.outbox import OutboxMessageMixin


class Base(DeclarativeBase):
    pass


ACTIVE = text("deleted_at IS NULL")


def active_index(name, *columns):
    """An index of the products in the catalogue (not deleted)."""
    return Index(name, *columns, postgresql_where=ACTIVE, sqlite_where=ACTIVE)


class Product(Base):
    """A product of the catalogue. Deleting one only sets ``deleted_at``:
    it leaves the catalogue, but orders that bought it still name it.

    Its words are indexed for search outside this model, by the database
    itself: see products/search.py and migration 0006."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price > 0", name="ck_products_price_positive"),
        # the catalogue's pages and count read this index only, not the table
        active_index("ix_products_active", "id"),
        # a category's page, its count and the list of categories
        active_index("ix_products_category", "category", "id"),
        # sorted by price or name, or filtered by price, a page reads 20 entries
        active_index("ix_products_price", "price", "id"),
        active_index("ix_products_name", text("lower(name)"), "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(Money)
    category: Mapped[str | None] = mapped_column(String(50), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class CatalogueSize(Base):
    """How many products the catalogue holds (not deleted): one row, changed
    by every create and delete in its own transaction. A page's ``total``
    reads it; counting the index instead read every entry of it, which at
    100,000 products cost more than the page."""

    __tablename__ = "catalogue_size"

    id: Mapped[int] = mapped_column(primary_key=True)  # the one row's: 1
    products: Mapped[int]


class OutboxMessage(OutboxMessageMixin, Base):
    """Events waiting to be published (common.messaging.outbox)."""

    __tablename__ = "outbox"
