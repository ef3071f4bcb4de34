"""The envelope every domain event travels in.

``{"event_id", "event_type", "source", "occurred_at", "data"}``: the id lets a
consumer recognise a redelivered event, ``data`` is the event's own payload.
"""
import uuid

from marshmallow import Schema, fields
from nameko.events import EventDispatcher

from common.db import utcnow


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
