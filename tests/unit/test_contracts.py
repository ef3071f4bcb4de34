"""The services' contracts (common.contracts): true to the code, published as
a valid AsyncAPI document, compatible with the last release's, and read
tolerantly by every consumer."""
import copy
import functools
import inspect
import json
from pathlib import Path

import jsonschema
import pytest
from marshmallow import ValidationError

from common.messaging.entrypoints import ShopRpc
from common.messaging.events import RetryingEventHandler, load_event
from common.messaging.retry import InvalidEvent
from common.schemas import schema_of
from gateway.catalogue import PRODUCT_EVENTS, ProductEventData
from inventory.service import InventoryService
from notifications.service import NotificationsService
from orders.service import OrdersService
from products.service import ProductsService
from tools.contracts import CONTRACTS, CURRENT, RELEASED, current_document
from tools.contracts.compatibility import breaks
from users.service import UsersService

ASYNCAPI_SCHEMA = Path(__file__).resolve().parents[1] / "contracts" / "asyncapi-3.0.0.schema.json"
SERVICES = {cls.name: cls for cls in (UsersService, ProductsService, InventoryService,
                                      OrdersService, NotificationsService)}
CONTRACT_OF = {contract.service: contract for contract in CONTRACTS}


def entrypoints(service_cls, kind):
    """``{method name: entrypoint}`` of the entrypoints of type ``kind``."""
    return {name: entrypoint
            for name, method in inspect.getmembers(service_cls, callable)
            for entrypoint in getattr(method, "nameko_entrypoints", ())
            if isinstance(entrypoint, kind)}


def test_the_asyncapi_document_is_valid_against_the_published_schema():
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))
    errors = [f"{list(error.absolute_path)}: {error.message[:200]}"
              for error in validator.iter_errors(current_document())]
    assert errors == []


def test_the_published_schema_refuses_a_document_that_is_not_asyncapi():
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))
    document = current_document()
    document["channels"]["orders.order_paid"]["bindings"]["amqp"]["is"] = "mailbox"
    del document["info"]["version"]
    assert len(list(validator.iter_errors(document))) == 2


def test_every_reference_in_the_document_resolves():
    document = current_document()

    def references(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    found = list(references(document))
    assert len(found) > 100
    for reference in found:
        functools.reduce(lambda parent, part: parent[part],
                         reference.removeprefix("#/").split("/"), document)


def test_the_gateway_serves_the_document_the_contracts_make():
    assert json.loads(CURRENT.read_text()) == current_document(), (
        "gateway/asyncapi.json is out of date: run make contracts")


def test_the_contracts_are_compatible_with_the_last_release():
    released = json.loads(RELEASED.read_text())
    assert [str(problem) for problem in breaks(released, current_document())] == []


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_contract_declares_every_rpc_method_with_its_parameters(service):
    contract = CONTRACT_OF[service]
    methods = entrypoints(SERVICES[service], ShopRpc)
    assert sorted(method.name for method in contract.methods) == sorted(methods)
    for method in contract.methods:
        parameters = list(inspect.signature(getattr(SERVICES[service], method.name))
                          .parameters.values())[1:]
        declared = method.arguments().fields
        assert [parameter.name for parameter in parameters] == list(declared), method.name
        for parameter in parameters:
            has_default = parameter.default is not inspect.Parameter.empty
            assert declared[parameter.name].required is not has_default, (
                f"{service}.{method.name}: {parameter.name} is required in the contract "
                f"exactly when the method gives it no default")


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda contract: contract.service)
def test_every_event_example_matches_its_schema(contract):
    for event in contract.events:
        assert schema_of(event.payload).validate(event.example) == {}, event.name


def consumers():
    """``(consumer, source, event_type, data schema)`` of every event handler."""
    for name, service_cls in SERVICES.items():
        for method_name, entrypoint in entrypoints(service_cls, RetryingEventHandler).items():
            yield (name, entrypoint.source_service, entrypoint.event_type,
                   getattr(service_cls, method_name).data_schema)
    for event_type in PRODUCT_EVENTS:
        yield "gateway", "products", event_type, ProductEventData()


CONSUMERS = list(consumers())


def test_every_handled_event_is_found():
    assert len(CONSUMERS) == 20


@pytest.mark.parametrize("consumer, source, event_type, data_schema", CONSUMERS,
                         ids=[f"{c}:{s}.{e}" for c, s, e, _ in CONSUMERS])
def test_every_consumer_reads_tolerantly(consumer, source, event_type, data_schema):
    """An event with a field its consumer does not know is read, and so is
    one without each field the consumer does not require; each field the
    consumer requires, its producer always sends."""
    event = CONTRACT_OF[source].event(event_type)
    envelope = {"event_id": "e1", "event_type": event_type, "source": source,
                "occurred_at": "2026-12-03T12:00:00+00:00", "data": event.example,
                "added_by_a_later_release": True}
    load_event(copy.deepcopy({**envelope, "data": {**event.example, "added_later": [1]}}),
               data_schema)
    producer_fields = schema_of(event.payload).fields
    for name, field in data_schema.fields.items():
        if field.required:
            assert producer_fields[name].required, (
                f"{consumer} requires {name}, which {source} may leave out of {event_type}")
        else:
            data = {key: value for key, value in event.example.items() if key != name}
            load_event({**envelope, "data": data}, data_schema)


def test_a_consumer_still_refuses_an_event_without_a_field_it_requires():
    schema = InventoryService.on_stock_reservation_requested.data_schema
    with pytest.raises(InvalidEvent, match="order_id"):
        load_event({"event_id": "e1", "event_type": "stock_reservation_requested",
                    "source": "orders", "occurred_at": "2026-12-03T12:00:00+00:00",
                    "data": {"items": [{"product_id": 1, "quantity": 1}]}}, schema)


def test_a_service_may_not_publish_an_event_its_contract_does_not_declare():
    with pytest.raises(LookupError, match="declare it in orders/contract.py"):
        CONTRACT_OF["orders"].event("order_shipped")


def test_a_payload_that_drifts_from_the_contract_is_caught():
    paid = schema_of(CONTRACT_OF["orders"].event("order_paid").payload)
    with pytest.raises(ValidationError):
        paid.load({"order_id": 1, "total": 12.5, "payment_id": "p"})
    with pytest.raises(ValidationError):
        paid.load({"order_id": 1, "total": "12.50", "payment_id": "p", "undeclared": 1})
