"""The shop's AsyncAPI 3.0 document, built from every service's contract
(common.contracts): a channel per event type and per RPC method, with their
AMQP bindings, message schemas and examples.

How nameko puts them on the wire: an event is published to the topic
exchange ``<service>.events`` with its type as the routing key, its payload
in the envelope of common.messaging.events; an RPC request goes to the topic
exchange ``nameko-rpc`` with the routing key ``<service>.<method>`` and the
body ``{"args": [...], "kwargs": {...}}``, and the answer,
``{"result": ..., "error": ...}``, to the queue the request's ``reply_to``
names, with its ``correlation_id``.
"""
from common.contracts import SCHEMA_VERSION_HEADER, JsonSchemas
from common.messaging.events import EnvelopeSchema

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
RPC_EXCHANGE = "nameko-rpc"


def build(contracts, version):
    """The AsyncAPI document (a dict) of ``contracts``, for shop ``version``."""
    schemas = JsonSchemas()
    document = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "shop",
            "version": version,
            "description": (
                "The events the shop's services publish and the RPC methods they offer, "
                "over RabbitMQ. Built from each service's contract.py; the HTTP API is "
                "described in /openapi.json."),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {
            "host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1",
            "description": "The broker make run uses"}},
        "channels": {},
        "operations": {},
        "components": {"messages": {}},
    }
    for contract in contracts:
        for event in contract.events:
            _add_event(document, schemas, contract.service, event)
        for method in contract.methods:
            _add_method(document, schemas, contract.service, method)
    return document


def _add_event(document, schemas, service, event):
    key = f"{service}.{event.name}"
    envelope = schemas.of(EnvelopeSchema)
    envelope["properties"]["data"] = schemas.of(event.payload)
    document["components"]["messages"][key] = {
        "name": event.name,
        "title": f"{service}: {event.name}",
        "summary": event.summary,
        "headers": {
            "type": "object",
            "properties": {SCHEMA_VERSION_HEADER: {
                "type": "integer", "const": event.version,
                "description": "The version of the schema of data"}},
        },
        "payload": envelope,
        "examples": [{
            "headers": {SCHEMA_VERSION_HEADER: event.version},
            "payload": {"event_id": "5b1e0c7a9d2f4e3b8a6c1d0e9f8a7b6c", "event_type": event.name,
                        "source": service, "occurred_at": "2026-12-03T12:00:00+00:00",
                        "data": event.example},
        }],
    }
    document["channels"][key] = {
        "address": event.name,
        "title": f"{service} events: {event.name}",
        "description": f"Published to the {service}.events exchange with this routing key, "
                       "through the service's outbox; each consumer binds a quorum queue of "
                       "its own, and handles a redelivered event as it did the first",
        "messages": {event.name: {"$ref": f"#/components/messages/{key}"}},
        "bindings": {"amqp": {
            "is": "routingKey",
            "exchange": {"name": f"{service}.events", "type": "topic", "durable": True,
                         "autoDelete": False, "vhost": "/"},
            "bindingVersion": AMQP_BINDING_VERSION}},
    }
    document["operations"][f"{service}.publish.{event.name}"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{key}"},
        "summary": event.summary,
        "tags": [{"name": service}],
        "messages": [{"$ref": f"#/channels/{key}/messages/{event.name}"}],
        "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True,
                              "bindingVersion": AMQP_BINDING_VERSION}},
    }


def _add_method(document, schemas, service, method):
    key = f"{service}.{method.name}"
    arguments = schemas.of(method.arguments)
    parameters = list(arguments["properties"])
    result = _result_schema(schemas, method)
    document["components"]["messages"][f"{key}.request"] = {
        "name": f"{method.name}.request",
        "title": f"{service}.{method.name}: request",
        "summary": method.summary,
        "payload": {
            "type": "object",
            "required": ["args", "kwargs"],
            "properties": {
                "args": _positional(arguments, parameters),
                "kwargs": arguments,
            },
        },
    }
    document["components"]["messages"][f"{key}.reply"] = {
        "name": f"{method.name}.reply",
        "title": f"{service}.{method.name}: reply",
        "payload": {
            "type": "object",
            "required": ["result", "error"],
            "properties": {
                "result": result,
                "error": {
                    "description": "null, or the exception: exc_type, exc_path, exc_args, "
                                   "value (common.errors for the shop's own)",
                    "type": ["object", "null"]},
            },
        },
    }
    document["channels"][key] = {
        "address": key,
        "title": f"RPC: {service}.{method.name}",
        "description": f"Requests go to the {RPC_EXCHANGE} exchange with this routing key; "
                       f"the {service} service consumes them from its quorum queue "
                       f"rpc-{service}, one consumer per instance",
        "messages": {"request": {"$ref": f"#/components/messages/{key}.request"}},
        "bindings": {"amqp": {
            "is": "routingKey",
            "exchange": {"name": RPC_EXCHANGE, "type": "topic", "durable": True,
                         "autoDelete": False, "vhost": "/"},
            "bindingVersion": AMQP_BINDING_VERSION}},
    }
    document["channels"][f"{key}.reply"] = {
        "address": None,
        "title": f"RPC: {service}.{method.name}, the caller's reply queue",
        "description": "The queue the request's reply_to names; the answer carries the "
                       "request's correlation_id",
        "messages": {"reply": {"$ref": f"#/components/messages/{key}.reply"}},
    }
    document["operations"][key] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{key}"},
        "summary": method.summary,
        "tags": [{"name": service}],
        "messages": [{"$ref": f"#/channels/{key}/messages/request"}],
        "reply": {
            "address": {"location": "$message.header#/reply_to",
                        "description": "The request's reply_to property"},
            "channel": {"$ref": f"#/channels/{key}.reply"},
            "messages": [{"$ref": f"#/channels/{key}.reply/messages/reply"}],
        },
    }


def _positional(arguments, parameters):
    if not parameters:
        return {"type": "array", "maxItems": 0, "description": "No arguments"}
    return {"type": "array",
            "description": f"Positional arguments, in this order: {', '.join(parameters)}",
            "items": [arguments["properties"][name] for name in parameters],
            "additionalItems": False}


def _result_schema(schemas, method):
    if method.result is None:
        return {"type": "null"}
    answer = schemas.of(method.result)
    if method.many:
        answer = {"type": "array", "items": answer}
    if method.keyed:
        keyed = {"type": "object", "required": ["result", "replayed"], "properties": {
            "result": answer,
            "replayed": {"type": "boolean",
                         "description": "true when this answers an earlier request "
                                        "with the same idempotency_key"}}}
        return {"description": "With an idempotency_key, {result, replayed}",
                "anyOf": [answer, keyed]}
    return answer
