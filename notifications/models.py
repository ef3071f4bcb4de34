from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.data.db import UtcDateTime


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """What the users service announced of a customer: enough to mail them
    without asking it."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254))


class Mail(Base):
    """One mail a customer is owed, by the kind of mail and what it is about
    (the user for a welcome, the order for the others): the same event
    delivered again finds it and sends nothing (notifications.mailing).
    ``sent_at`` is set once the SMTP server accepted the mail; until then its
    ``message_id`` stays the same however often it is tried."""

    __tablename__ = "mails"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    about_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    recipient: Mapped[str] = mapped_column(String(254))
    message_id: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    first_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # a delivery sending it now; until then another one does not
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # the server refused it for good (5xx) at its last try; a replay tries again
    refused_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


# the mails not sent yet, oldest first: what the unsent-mail age reads
Index("ix_mails_unsent", Mail.sent_at, Mail.refused_at, Mail.first_attempt_at)
