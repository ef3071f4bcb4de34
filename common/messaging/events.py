"""The envelope every domain event travels in.

``{"event_id", "event_type", "source", "occurred_at", "data"}``: the id lets a
consumer recognise a redelivered event, ``data`` is the event's own payload.
"""
import functools
import logging
import uuid

from marshmallow import EXCLUDE, Schema, ValidationError, fields
from nameko.events import EventHandler

from common.data.db import utcnow
from common.errors import ShopError
from common.messaging.consumers import ShopQueueConsumer
from common.messaging.entrypoints import NamekoContextHeaders
from common.messaging.retry import FailedMessages, InvalidEvent, handler_queue
from common.observability.telemetry import telemetry_of
from common.observability.tracing import SpanKind
from common.schemas import schema_of

log = logging.getLogger(__name__)


def envelope(source, event_type, data):
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": event_type,
        "source": source,
        "occurred_at": utcnow().isoformat(),
        "data": data,
    }


class EnvelopeSchema(Schema):
    # a tolerant reader: a later release may add to the envelope
    class Meta:
        unknown = EXCLUDE

    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    data = fields.Dict(required=True)


def publish_span(service_name, event_type):
    """The name, kind and attributes of the span of a published event."""
    return (f"publish {service_name}.{event_type}", SpanKind.PRODUCER,
            {"messaging.system": "rabbitmq",
             "messaging.destination.name": f"{service_name}.{event_type}"})


def load_event(envelope, data_schema):
    """The ``data`` of an event envelope, loaded through ``data_schema``."""
    try:
        checked = schema_of(EnvelopeSchema).load(envelope)
        return data_schema.load(checked["data"])
    except ValidationError as exc:
        raise InvalidEvent(f"invalid event: {exc.messages}") from None


class RetryingEventHandler(NamekoContextHeaders, EventHandler):
    """nameko's EventHandler, on a quorum queue, with a failed message
    retried later or dead-lettered (common.messaging.retry) instead of acked and lost."""

    queue_consumer = ShopQueueConsumer()
    failed_messages = FailedMessages()

    def setup(self):
        super().setup()
        handler_queue(self.queue)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        settle = self.queue_consumer.ack_message
        if exc_info is not None:
            try:
                outcome = self.failed_messages.handle(message, self.queue.name, exc_info[1])
                self._count_failure(outcome)
            except Exception:
                log.exception("could not retry or dead-letter a message of %s; requeued",
                              self.queue.name)
                settle = self.queue_consumer.requeue_message
        settle(message)  # a connection already gone is logged (ShopQueueConsumer)
        return result, exc_info

    def _count_failure(self, outcome):
        telemetry = telemetry_of(self.container)
        if telemetry is not None:
            telemetry.metrics.event_failures.labels(
                service=self.container.service_name, queue=self.queue.name,
                outcome=outcome).inc()


def handle_event(source, event_type, data_schema):
    """An event handler for one shop event. The method receives the event's
    ``data``, validated by ``data_schema``. A failure is retried with backoff;
    an event that does not match the schema is dead-lettered at once."""

    def decorate(method):
        @functools.wraps(method)
        def handler(self, envelope):
            return method(self, load_event(envelope, data_schema))

        handler.data_schema = data_schema  # what the handler reads (tests/unit/test_contracts.py)
        # expected: logged as a refusal, not as a crash of the handler
        return RetryingEventHandler.decorator(
            source, event_type, expected_exceptions=(InvalidEvent, ShopError))(handler)

    return decorate
