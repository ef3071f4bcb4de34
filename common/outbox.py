"""Transactional outbox: an event is written in the same database transaction
as the change it announces, and a relay publishes it afterwards.

Nameko's EventDispatcher publishes after the commit, outside the transaction:
a process that dies in between loses the event, and a message published while
no queue is bound is dropped. Here ``self.outbox.add(event_type, data)`` adds a
row to the worker's session; it is committed (or rolled back) with the change.
The relay, one green thread per service process, publishes unsent rows with
publisher confirms and ``mandatory`` routing, marks them sent, and retries with
a growing delay what the broker did not confirm or could not route (no
consumer queue bound yet). It wakes as soon as a worker that added rows ends,
and polls as a safety net.

Delivery is at least once: a row published just before a crash is published
again, so consumers must be idempotent.
"""
import logging
from datetime import datetime, timedelta

import eventlet
from eventlet.event import Event
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import get_event_exchange
from nameko.extensions import DependencyProvider
from nameko.messaging import HeaderEncoder
from sqlalchemy import JSON, Index, String, Text, func, select
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from common.db import Database, UtcDateTime, utcnow
from common.events import envelope, publish_span
from common.telemetry import telemetry_of, tracer_of

BATCH_SIZE = 50
POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger(__name__)


class OutboxMessageMixin:
    """The outbox table's columns; a service declares
    ``class OutboxMessage(OutboxMessageMixin, Base): __tablename__ = "outbox"``."""

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict] = mapped_column(JSON)
    headers: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    @declared_attr.directive
    def __table_args__(cls):
        return (Index("ix_outbox_unsent", "sent_at", "next_attempt_at"),)


def backoff(attempts):
    """Seconds to wait after ``attempts`` failed publishes: 0.5, 1, 2... up to 30."""
    return min(0.5 * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)


class OutboxWriter:
    def __init__(self, provider, worker_ctx):
        self.provider = provider
        self.worker_ctx = worker_ctx

    def add(self, event_type, data):
        """Add the event to the worker's database session: it is published
        only if, and once, the session commits."""
        now = utcnow()
        session = self.provider.database.dbs[self.worker_ctx].session
        service_name = self.provider.container.service_name
        # the headers carry the request id and name this span as the consumer's parent
        with self.provider.tracer.outgoing(self.worker_ctx, *publish_span(service_name, event_type)):
            headers = self.provider.get_message_headers(self.worker_ctx)
        session.add(self.provider.model(
            event_type=event_type, payload=envelope(service_name, event_type, data),
            headers=headers, created_at=now, next_attempt_at=now))
        self.provider.added.add(self.worker_ctx)


class Outbox(DependencyProvider, HeaderEncoder):
    """``self.outbox.add(event_type, data)``, published by the relay after commit.

    ``model`` is the service's mapped outbox class; the service's
    :class:`common.db.Database` dependency supplies the session and engine.
    """

    def __init__(self, model, poll_seconds=POLL_SECONDS):
        self.model = model
        self.poll_seconds = poll_seconds
        self.added = set()

    def setup(self):
        self.exchange = get_event_exchange(self.container.service_name, self.container.config)
        self.publisher = Publisher(
            self.container.config[AMQP_URI_CONFIG_KEY],
            use_confirms=True, mandatory=True, declare=[self.exchange],
            # a broker that is down is retried by the relay, not inside one publish
            retry_policy={"max_retries": 1})
        self.wakeup = Event()
        self.running = False

    def start(self):
        [self.database] = [d for d in self.container.dependencies if isinstance(d, Database)]
        self.tracer = tracer_of(self.container)
        telemetry = telemetry_of(self.container)
        if telemetry is not None:
            telemetry.metrics.gauge(
                "shop_outbox_backlog", "Events written but not yet published"
            ).set_function(self.backlog)
        self.running = True
        self.relay_thread = self.container.spawn_managed_thread(self._relay)

    def stop(self):
        self.running = False
        self._wake()
        self.relay_thread.wait()

    def kill(self):
        self.running = False
        self.relay_thread.kill()

    def get_dependency(self, worker_ctx):
        return OutboxWriter(self, worker_ctx)

    def worker_teardown(self, worker_ctx):
        if worker_ctx in self.added:
            self.added.discard(worker_ctx)
            self._wake()

    def _wake(self):
        if not self.wakeup.ready():
            self.wakeup.send()

    def _relay(self):
        while self.running:
            try:
                more = self.relay_once()
            except Exception:
                log.exception("outbox relay failed; retrying in %s s", self.poll_seconds)
                more = False
            if not more:
                with eventlet.Timeout(self.poll_seconds, False):
                    self.wakeup.wait()
            self.wakeup = Event()
        log.debug("outbox relay stopped")

    def backlog(self):
        with self.database.Session() as session:
            return session.scalar(select(func.count(self.model.id))
                                  .where(self.model.sent_at.is_(None)))

    def relay_once(self):
        """Publish one batch of due rows; True if there may be more."""
        with self.database.Session() as session:
            query = (select(self.model)
                     .where(self.model.sent_at.is_(None),
                            self.model.next_attempt_at <= utcnow())
                     .order_by(self.model.id).limit(BATCH_SIZE))
            if session.get_bind().dialect.name == "postgresql":
                # several instances of a service share the table
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            for row in rows:
                if not self._publish(row):
                    break  # the broker is unreachable: the rest would fail too
            session.commit()
        return len(rows) == BATCH_SIZE

    def _publish(self, row):
        try:
            self.publisher.publish(
                row.payload, exchange=self.exchange, routing_key=row.event_type,
                headers=row.headers)
        except UndeliverableMessage:
            self._failed(row, f"no queue is bound for {row.event_type}")
            return True
        except Exception as exc:
            self._failed(row, f"{type(exc).__name__}: {exc}")
            return False
        row.sent_at = utcnow()
        return True

    def _failed(self, row, reason):
        row.attempts += 1
        row.last_error = reason
        row.next_attempt_at = utcnow() + timedelta(seconds=backoff(row.attempts))
        log.warning("event %s (outbox row %s) not published, attempt %s: %s",
                    row.event_type, row.id, row.attempts, reason)
