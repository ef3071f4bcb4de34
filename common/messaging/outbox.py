"""Transactional outbox: an event is written in the same database transaction
as the change it announces, and published once that transaction commits.

Nameko's EventDispatcher publishes after the commit, outside the transaction:
a process that dies in between loses the event, and a message published while
no queue is bound is dropped. Here ``self.outbox.add(event_type, data)`` adds a
row to the worker's session; it is committed (or rolled back) with the change.

The worker that committed a row publishes it itself when it ends (after its
RPC reply is sent), with publisher confirms and ``mandatory`` routing: no
query, and one round trip to the broker per event. The rows it published are
marked sent in batches, one UPDATE for all that the workers sent within
``MARK_DELAY_SECONDS``. A row its worker could not publish (the process died, the broker was away, no
queue bound yet) is left to the relay, one green thread per service process,
which polls for rows older than ``HANDOFF_SECONDS`` and retries them with a
growing delay.

Sent rows are kept for ``OUTBOX.RETENTION_SECONDS`` (what was announced, and
when, for looking into a problem), then pruned by the relay, a small batch
per turn of its loop, so that pruning never holds up publishing.

Delivery is at least once: a row published just before a crash (or before
its mark was written) is published again, so consumers must be idempotent.
"""
import logging
import time
from datetime import datetime, timedelta

import eventlet
from eventlet.event import Event
from nameko.amqp.publish import UndeliverableMessage
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import get_event_exchange
from nameko.extensions import DependencyProvider
from nameko.messaging import HeaderEncoder
from sqlalchemy import JSON, Index, String, Text, delete, event, insert, select, text, update
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from common.config import OutboxSettings
from common.contracts import SCHEMA_VERSION_HEADER
from common.data.db import Database, UtcDateTime, deferred, utcnow, waiting_rows
from common.messaging.events import envelope, publish_span
from common.messaging.publisher import PooledPublisher
from common.observability.telemetry import telemetry_of, tracer_of

BATCH_SIZE = 50
POLL_SECONDS = 1.0
# how long the relay leaves a new row to the worker that wrote it
HANDOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
# how long published rows wait to be marked sent together
MARK_DELAY_SECONDS = 0.25
PRUNE_BATCH_SIZE = 1000
# how often the relay looks for sent rows past their retention
PRUNE_SECONDS = 60.0
# outbox row ids a process takes from the table's sequence at a time
ID_BLOCK_SIZE = 100
TAKE_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                "FROM generate_series(1, :count)")

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
        only if, and once, the session commits. A LookupError if the
        service's contract does not declare ``event_type``."""
        schema_version = self.provider.contract.event(event_type).version
        now = utcnow()
        session = self.provider.database.dbs[self.worker_ctx].session
        service_name = self.provider.container.service_name
        # the headers carry the request id and name this span as the consumer's parent
        with self.provider.tracer.outgoing(self.worker_ctx, *publish_span(service_name, event_type)):
            headers = self.provider.get_message_headers(self.worker_ctx)
        headers[SCHEMA_VERSION_HEADER] = schema_version
        payload = envelope(service_name, event_type, data)
        row_id = self.provider.insert_row(session, {
            "event_type": event_type, "payload": payload, "headers": headers,
            "created_at": now, "next_attempt_at": now + timedelta(seconds=HANDOFF_SECONDS),
        })
        session.info["outbox_worker"] = self.worker_ctx
        session.info.setdefault("outbox_rows", []).append(
            (row_id, event_type, payload, headers))

    def publish_committed(self):
        """Publish now what the worker has committed so far, rather than when
        it ends: for a worker that commits many batches in one run."""
        self.provider.publish_committed(self.worker_ctx)


class Outbox(DependencyProvider, HeaderEncoder):
    """``self.outbox.add(event_type, data)``, published by the relay after commit.

    ``model`` is the service's mapped outbox class, ``contract`` its
    :class:`common.contracts.Contract`, which declares the events it may add;
    the service's :class:`common.data.db.Database` dependency supplies the
    session and engine.
    """

    def __init__(self, model, contract, poll_seconds=POLL_SECONDS):
        self.model = model
        self.contract = contract
        self.poll_seconds = poll_seconds
        self.committed = {}  # worker: [(id, event_type, payload, headers)] to publish
        self.sent_ids = []  # published by workers, not yet marked sent

    def setup(self):
        self.exchange = get_event_exchange(self.container.service_name, self.container.config)
        self.publisher = PooledPublisher(
            self.container.config[AMQP_URI_CONFIG_KEY],
            use_confirms=True, mandatory=True, declare=[self.exchange],
            # a broker that is down is retried by the relay, not inside one publish
            retry_policy={"max_retries": 1})
        # a Core INSERT built once, not an object for the unit of work to
        # flush: the hot paths write a row per request, and the flush's
        # bookkeeping, like building the statement, cost more than running it
        table = self.model.__table__
        self.insert_returning_id = insert(table).returning(table.c.id)
        self.insert_deferred = deferred(insert(table))
        self.spare_ids = []  # taken from the table's sequence (PostgreSQL)
        settings = OutboxSettings().load(self.container.config.get("OUTBOX") or {})
        self.retention = timedelta(seconds=settings["RETENTION_SECONDS"])
        self.wakeup = Event()
        self.running = False
        self.relay_thread = None

    def start(self):
        [self.database] = [d for d in self.container.dependencies if isinstance(d, Database)]
        # its own hold on the engine: the Database dependency stops (and drops
        # its engine) beside this one, and the relay marks what it published
        # as sent after that, as it stops
        self.engine = self.database.engine
        event.listen(self.database.Session, "after_commit", self._after_commit)
        event.listen(self.database.Session, "after_rollback", self._after_rollback)
        self.tracer = tracer_of(self.container)
        telemetry = telemetry_of(self.container)
        if telemetry is not None:
            telemetry.metrics.read_at_scrape(self.backlog, {
                "shop_outbox_backlog": "Events written but not yet published",
                "shop_outbox_oldest_seconds":
                    "Age of the oldest event not yet published; 0 when none waits"})
        self.running = True
        self.relay_thread = self.container.spawn_managed_thread(self._relay)

    def stop(self):
        self.running = False
        self._wake()
        if self.relay_thread is not None:  # None: stopped before it started
            self.relay_thread.wait()
            self.engine.dispose()  # the connection its last UPDATE took

    def kill(self):
        self.running = False
        if self.relay_thread is not None:
            self.relay_thread.kill()

    def get_dependency(self, worker_ctx):
        return OutboxWriter(self, worker_ctx)

    def insert_row(self, session, row):
        """Insert an outbox row; returns its id. On PostgreSQL the id comes
        first, from a block taken from the table's sequence, so that the
        INSERT needs no answer and goes out with the next statement or the
        COMMIT (common.data.db.deferred): a round trip less per event. Ids stay
        unique, but two processes' rows interleave out of their order of
        writing (nothing relies on it: the relay retries by id, oldest id
        first, whatever process wrote it)."""
        if session.get_bind().dialect.name != "postgresql":
            return session.execute(self.insert_returning_id, row).scalar_one()
        if not self.spare_ids:
            taken = session.scalars(
                TAKE_IDS, {"table": self.model.__tablename__, "count": ID_BLOCK_SIZE})
            self.spare_ids.extend(sorted(taken, reverse=True))  # popped lowest first
        row_id = self.spare_ids.pop()
        session.execute(self.insert_deferred, {**row, "id": row_id})
        return row_id

    def _after_commit(self, session):
        rows = session.info.pop("outbox_rows", None)
        if rows:
            self.committed.setdefault(session.info["outbox_worker"], []).extend(rows)

    def _after_rollback(self, session):
        session.info.pop("outbox_rows", None)  # they were never written

    def worker_teardown(self, worker_ctx):
        self.publish_committed(worker_ctx)

    def publish_committed(self, worker_ctx):
        """Publish what the worker committed; what fails is the relay's."""
        for row_id, event_type, payload, headers in self.committed.pop(worker_ctx, ()):
            try:
                self.publisher.publish(
                    payload, exchange=self.exchange, routing_key=event_type, headers=headers)
            except Exception as exc:  # no queue bound, or no broker: the relay retries
                log.info("event %s (outbox row %s) left to the relay: %s: %s",
                         event_type, row_id, type(exc).__name__, exc)
                continue
            self.sent_ids.append(row_id)
        if self.sent_ids:
            self._wake()

    def _wake(self):
        if not self.wakeup.ready():
            self.wakeup.send()

    def _relay(self):
        polled_at = pruned_at = 0.0
        while self.running:
            more = False
            try:
                self.mark_sent()
                if time.monotonic() - polled_at >= self.poll_seconds:
                    more = self.relay_once()
                    polled_at = 0.0 if more else time.monotonic()
                if time.monotonic() - pruned_at >= PRUNE_SECONDS:
                    more_to_prune = self.prune_once()
                    pruned_at = 0.0 if more_to_prune else time.monotonic()
                    more = more or more_to_prune
            except Exception:
                log.exception("outbox relay failed; retrying in %s s", self.poll_seconds)
            if more:
                eventlet.sleep(0)  # let the workers run between batches
            else:
                with eventlet.Timeout(self.poll_seconds, False):
                    self.wakeup.wait()
                if self.running and self.sent_ids:
                    # gather what the next moment's workers publish into the same UPDATE
                    eventlet.sleep(MARK_DELAY_SECONDS)
            self.wakeup = Event()
        try:
            self.mark_sent()
        except Exception:  # the rows go out again after the next start
            log.warning("could not mark published events sent at stop", exc_info=True)
        log.debug("outbox relay stopped")

    def mark_sent(self):
        """One UPDATE for every row the workers published since the last one."""
        ids, self.sent_ids = self.sent_ids, []
        if not ids:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(update(self.model).where(self.model.id.in_(ids))
                                   .values(sent_at=utcnow()))
        except Exception:
            self.sent_ids[:0] = ids  # next time; meanwhile they may go out again
            raise

    def prune_once(self):
        """Delete one batch of rows sent longer ago than the retention; True
        if there may be more."""
        expired = (select(self.model.id)
                   .where(self.model.sent_at < utcnow() - self.retention)
                   .order_by(self.model.id).limit(PRUNE_BATCH_SIZE))
        with self.engine.begin() as connection:
            pruned = connection.execute(
                delete(self.model).where(self.model.id.in_(expired.scalar_subquery()))).rowcount
        if pruned:
            log.debug("pruned %s sent events", pruned)
        return pruned >= PRUNE_BATCH_SIZE

    def backlog(self):
        """How many rows are not yet published (unsent ones, less those this
        process has published and is about to mark sent), and how long the
        oldest unsent one has waited."""
        waiting = [self.model.sent_at.is_(None)]
        if self.sent_ids:
            waiting.append(self.model.id.not_in(list(self.sent_ids)))
        with self.database.Session() as session:
            unsent, oldest_seconds = waiting_rows(session, self.model.created_at, *waiting)
        return {"shop_outbox_backlog": unsent, "shop_outbox_oldest_seconds": oldest_seconds}

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
