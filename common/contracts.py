"""What a service promises the others: the events it publishes and the RPC
methods it offers, each described by marshmallow schemas.

A service declares its contract once, in its ``contract.py``, with the
schemas it validates and answers with. From the contracts, ``tools.contracts``
builds the shop's AsyncAPI document and checks a change against the last
release's contracts; the outbox refuses an event its service does not declare
and sends each with the version of its payload's schema.

An event's ``version`` goes up with every change to its payload. A change
that would break a consumer still on the old release (a field removed,
renamed or retyped) is never made to an event: it is a new event type,
published beside the old one for a release.
"""
from dataclasses import dataclass, field

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from common.schemas import Money

# the AMQP header that carries an event's schema version; a header, not a
# field of the envelope, which releases before 0.2.0 refuse to read
SCHEMA_VERSION_HEADER = "schema-version"


@dataclass(frozen=True)
class Event:
    """An event type a service publishes: ``payload`` describes its ``data``."""

    name: str
    payload: type[Schema]
    version: int
    summary: str
    example: dict


@dataclass(frozen=True)
class Method:
    """An RPC method: ``arguments`` has a field per parameter, in the
    method's order, required where the parameter has no default. ``result``
    describes the answer (None: the method answers null), a list of them
    with ``many``. A ``keyed`` method answers ``{"result", "replayed"}``
    when it is given an ``idempotency_key``."""

    name: str
    arguments: type[Schema]
    result: type[Schema] | None
    summary: str
    many: bool = False
    keyed: bool = False


@dataclass(frozen=True)
class Contract:
    service: str
    events: tuple[Event, ...] = ()
    methods: tuple[Method, ...] = ()
    _events: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_events", {event.name: event for event in self.events})

    def event(self, event_type):
        """The declared :class:`Event`; a LookupError if the service does not
        declare ``event_type``."""
        try:
            return self._events[event_type]
        except KeyError:
            raise LookupError(
                f"the {self.service} service publishes no event {event_type!r}: "
                f"declare it in {self.service}/contract.py") from None


def arguments(**parameters):
    """A schema for an RPC method's parameters, in the order given."""
    return Schema.from_dict(parameters, name="Arguments")


def page_of(item_schema):
    """``{"items": [...], "total": n}``, as the listing methods answer."""
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item_schema)),
        "total": fields.Integer(),
    }, name=f"PageOf{item_schema.__name__}")


class PingResult(Schema):
    service = fields.String(required=True)
    database = fields.String(required=True)
    version = fields.String(required=True)
    revision = fields.String(required=True)


# every domain service's health check (common.messaging.entrypoints.health_check)
PING = Method("ping", arguments(), PingResult,
              "Answers when the service takes work and its database answers")


def teach_shop_fields(plugin):
    """Teach apispec's marshmallow plugin (once its spec set it up) the shop's
    own fields: an amount is a string such as "12.50", so that no client
    reads it as a float."""
    plugin.map_to_openapi_type(Money, "string", "decimal")
    plugin.converter.add_attribute_function(money_pattern)


def money_pattern(converter, field, **kwargs):
    if isinstance(field, Money):
        return {"pattern": field.pattern.pattern, "example": "12.50"}
    return {}


class JsonSchemas:
    """JSON Schemas (draft 2020-12, as OpenAPI 3.1 writes them) of marshmallow
    schemas, nested ones written in place."""

    def __init__(self):
        self.plugin = MarshmallowPlugin(schema_name_resolver=lambda schema: None)
        APISpec("contracts", "0", "3.1.0", plugins=[self.plugin])  # sets the plugin up
        teach_shop_fields(self.plugin)

    def of(self, schema_class):
        return self.plugin.converter.schema2jsonschema(schema_class())
