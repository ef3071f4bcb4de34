"""Retries and dead letters for event handlers.

Nameko acks the message of a handler that raised, and the event is lost. The
shop's handlers (``common.messaging.events.handle_event``) instead:

- retry a transient failure (any exception but the two below) after a delay
  that doubles each time, ``EVENT_RETRY.FIRST_DELAY_MS`` at first, up to
  ``EVENT_RETRY.MAX_ATTEMPTS`` deliveries in all; then dead-letter it;
- dead-letter at once an event that fails its schema (:class:`InvalidEvent`)
  or that a handler refuses (a :class:`common.errors.ShopError`): delivering
  it again would fail again.

A delayed message waits in ``shop.retry.<ms>ms`` (one queue per delay, shared
by every handler) until its TTL ends and RabbitMQ dead-letters it back to the
handler's own queue: it is routed through the default exchange by its routing
key, which is that queue's name. A dead letter goes to the ``shop.dead-letters``
queue with headers saying where it came from and why it failed;
RabbitMQ files one there too (with its ``x-death`` header) when a message
was delivered ``REDELIVERY_LIMIT`` times and never settled: a message that
kills the process handling it, say.
``python -m tools.dlq`` lists and replays them. The message is acked only
once its retry or dead letter is confirmed by the broker; if that publish
fails, the message is requeued instead.
"""
import logging
import traceback
import uuid

from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import SharedExtension

from common.data.db import utcnow
from common.errors import ShopError
from common.messaging.queues import AT_LEAST_ONCE_DEAD_LETTERING, check_declared, quorum
from common.observability.telemetry import telemetry_of

log = logging.getLogger(__name__)

RETRY_EXCHANGE = Exchange("shop.retry-delays", type="headers", durable=True)
DEAD_LETTER_EXCHANGE = Exchange("shop.dead-letters", type="fanout", durable=True)
DEAD_LETTER_QUEUE = quorum(
    Queue("shop.dead-letters", exchange=DEAD_LETTER_EXCHANGE, durable=True))
MAX_DELAY_MS = 60_000
# deliveries of one message that ended without an ack or a reject (its
# consumer died with it, say): past this, RabbitMQ dead-letters it
REDELIVERY_LIMIT = 20

ATTEMPTS_HEADER = "x-shop-attempts"
# a headers exchange ignores headers named x-... when it matches: a binding on
# one would take every message, and each retry would go to every delay queue
DELAY_HEADER = "shop-retry-delay"
# set on a dead letter
QUEUE_HEADER = "x-shop-queue"
REASON_HEADER = "x-shop-reason"
FAILED_AT_HEADER = "x-shop-failed-at"


class InvalidEvent(Exception):
    """An event whose payload does not match its consumer's schema."""


def is_permanent(exc):
    return isinstance(exc, (InvalidEvent, ShopError))


def delay_ms(attempt, first_delay_ms):
    """The wait before delivery ``attempt + 1``: first_delay_ms, then doubling."""
    return min(first_delay_ms * 2 ** (attempt - 1), MAX_DELAY_MS)


def retry_queue(delay):
    return quorum(
        Queue(f"shop.retry.{delay}ms", exchange=RETRY_EXCHANGE, durable=True,
              binding_arguments={"x-match": "all", DELAY_HEADER: delay}),
        **{"x-message-ttl": delay, "x-dead-letter-exchange": ""},
        **AT_LEAST_ONCE_DEAD_LETTERING)


def handler_queue(queue):
    """The kombu ``queue`` of an event handler, as a quorum queue that
    dead-letters a message its consumers keep failing to settle."""
    return quorum(
        queue, **{"x-delivery-limit": REDELIVERY_LIMIT,
                  "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name},
        **AT_LEAST_ONCE_DEAD_LETTERING)


def describe(exc):
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[:1000]


class FailedMessages(SharedExtension):
    """Schedules a retry, or files a dead letter, for a failed handler's message."""

    def setup(self):
        settings = self.container.config["EVENT_RETRY"]
        self.max_attempts = settings["MAX_ATTEMPTS"]
        self.first_delay_ms = settings["FIRST_DELAY_MS"]
        self.publisher = Publisher(
            self.container.config[AMQP_URI_CONFIG_KEY], use_confirms=True, mandatory=True)

    def start(self):
        # the handler queues dead-letter into it as well: it must exist
        # before the first message reaches their delivery limit
        check_declared(Connection(self.container.config[AMQP_URI_CONFIG_KEY]),
                       [DEAD_LETTER_QUEUE])
        telemetry = telemetry_of(self.container)
        if telemetry is not None:
            telemetry.metrics.read_at_scrape(self.waiting_dead_letters, {
                "shop_dead_letters": "Messages waiting in the shop.dead-letters queue "
                                     "(make dlq lists them)"})

    def waiting_dead_letters(self):
        with Connection(self.container.config[AMQP_URI_CONFIG_KEY],
                        connect_timeout=2) as connection:
            with connection.channel() as channel:
                declared = DEAD_LETTER_QUEUE(channel).queue_declare(passive=True)
        return {"shop_dead_letters": declared.message_count}

    def handle(self, message, queue_name, exc):
        """Retry or dead-letter ``message``, taken from ``queue_name``: returns
        ``"retried"`` or ``"dead_lettered"``; raises if the broker did not take
        it, so that the caller requeues it."""
        headers = dict(message.headers)
        attempts = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
        headers[ATTEMPTS_HEADER] = attempts
        if not is_permanent(exc) and attempts < self.max_attempts:
            delay = delay_ms(attempts, self.first_delay_ms)
            headers[DELAY_HEADER] = delay
            self.publisher.publish(
                message.body, exchange=RETRY_EXCHANGE, routing_key=queue_name,
                headers=headers, declare=[retry_queue(delay)],
                content_type=message.content_type, content_encoding=message.content_encoding)
            log.warning("%s failed (attempt %s of %s), retrying in %s ms: %s",
                        queue_name, attempts, self.max_attempts, delay, describe(exc))
            return "retried"
        headers.update({
            QUEUE_HEADER: queue_name,
            REASON_HEADER: describe(exc),
            FAILED_AT_HEADER: utcnow().isoformat(),
        })
        headers.pop(DELAY_HEADER, None)
        self.publisher.publish(
            message.body, exchange=DEAD_LETTER_EXCHANGE, routing_key=queue_name,
            headers=headers, declare=[DEAD_LETTER_QUEUE], message_id=uuid.uuid4().hex,
            content_type=message.content_type, content_encoding=message.content_encoding)
        log.error("%s failed after %s attempt(s); dead-lettered: %s",
                  queue_name, attempts, describe(exc))
        return "dead_lettered"
