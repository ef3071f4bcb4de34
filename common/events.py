"""The envelope every domain event travels in.

``{"event_id", "event_type", "source", "occurred_at", "data"}``: the id lets a
consumer recognise a redelivered event, ``data`` is the event's own payload.
"""
import functools
import logging
import uuid

from marshmallow import Schema, ValidationError, fields
from nameko.events import EventDispatcher, event_handler

from common.db import utcnow

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
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    data = fields.Dict(required=True)


class EventPublisher(EventDispatcher):
    """nameko's EventDispatcher, wrapping each payload in the envelope:
    ``self.publish("product_created", product)``."""

    def get_dependency(self, worker_ctx):
        dispatch = super().get_dependency(worker_ctx)
        service_name = self.container.service_name

        def publish(event_type, data):
            dispatch(event_type, envelope(service_name, event_type, data))

        return publish


class InvalidEvent(Exception):
    pass


def load_event(envelope, data_schema):
    """The ``data`` of an event envelope, loaded through ``data_schema``."""
    try:
        checked = EnvelopeSchema().load(envelope)
        return data_schema.load(checked["data"])
    except ValidationError as exc:
        raise InvalidEvent(f"invalid event: {exc.messages}") from None


def handle_event(source, event_type, data_schema):
    """nameko's ``@event_handler`` for one shop event. The method receives the
    event's ``data``, validated by ``data_schema``; an event that does not
    match its schema is logged with its payload and not handled."""

    def decorate(method):
        @functools.wraps(method)
        def handler(self, envelope):
            try:
                data = load_event(envelope, data_schema)
            except InvalidEvent as exc:
                log.error("%s.%s refused %s: %s; payload: %r",
                          source, event_type, method.__name__, exc, envelope)
                return None
            return method(self, data)

        return event_handler(source, event_type)(handler)

    return decorate
