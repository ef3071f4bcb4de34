from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.data.db import UtcDateTime, utcnow
from common.messaging.outbox import OutboxMessageMixin

CUSTOMER = "customer"
ADMIN = "admin"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('customer', 'admin')", name="ck_users_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=CUSTOMER)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OutboxMessage(OutboxMessageMixin, Base):
    """Events waiting to be published (common.messaging.outbox)."""

    __tablename__ = "outbox"


# usernames are unique whatever their case ("Alice" and "alice" are one user)
Index("uq_users_username_lower", func.lower(User.username), unique=True)
