"""The compatibility gate (tools.contracts.compatibility) against real
changes to the shop's contracts: each breaking one is caught, naming the
event or method and the field; the safe ones pass."""
import dataclasses

import pytest
from marshmallow import Schema, fields, validate

from common.schemas import Money, id_field
from orders.schemas import OrderPaidSchema, OrderSchema
from tools.contracts import CONTRACTS, asyncapi
from tools.contracts.compatibility import breaks

RELEASED = asyncapi.build(CONTRACTS, "1.0.0")


def changed(service, event=None, method=None, remove=False, **changes):
    """The shop's AsyncAPI document with one event or method of ``service``
    changed (``dataclasses.replace`` with ``changes``) or removed."""
    contracts = []
    for contract in CONTRACTS:
        if contract.service == service:
            kind, name = ("events", event) if event else ("methods", method)
            items = [item if item.name != name else
                     None if remove else dataclasses.replace(item, **changes)
                     for item in getattr(contract, kind)]
            contract = dataclasses.replace(contract, **{kind: tuple(filter(None, items))})
        contracts.append(contract)
    return asyncapi.build(contracts, "1.1.0")


def problems(current):
    return [str(problem) for problem in breaks(RELEASED, current)]


def order_paid(version=2, **fields_):
    """orders' order_paid payload with some fields replaced (None: removed)."""
    declared = {**OrderPaidSchema._declared_fields, **fields_}
    payload = Schema.from_dict({name: field for name, field in declared.items()
                                if field is not None})
    return {"event": "order_paid", "payload": payload, "version": version}


def test_the_unchanged_contracts_pass():
    assert problems(asyncapi.build(CONTRACTS, "1.1.0")) == []


def test_a_removed_event_field_is_caught():
    [problem] = problems(changed("orders", **order_paid(version=3, total=None)))
    assert problem.startswith("orders.order_paid, data.total: is removed or renamed")
    assert "order_paid_v2" in problem


def test_a_renamed_event_field_is_caught():
    found = problems(changed("orders", **order_paid(
        version=3, payment_id=None, payment_reference=fields.String(required=True))))
    assert found and found[0].startswith("orders.order_paid, data.payment_id: is removed")


def test_an_event_field_of_another_type_is_caught():
    found = problems(changed("orders", **order_paid(version=3, total=fields.Float(
        required=True))))
    assert found[0].startswith("orders.order_paid, data.total: may now be number "
                               "(type string became number)")
    assert found[1].startswith("orders.order_paid, data.total: its format changes from "
                               "decimal to none")


def test_an_event_field_of_another_format_is_caught():
    dated = Schema.from_dict({
        "id": id_field(required=True), "name": fields.String(required=True),
        "description": fields.String(required=True), "price": Money(required=True),
        "created_at": fields.Date(required=True),
        "updated_at": fields.AwareDateTime(required=True)})
    found = problems(changed("products", event="product_created", version=2, payload=dated))
    assert any(problem.startswith("products.product_created, data.created_at: its format "
                                  "changes from date-time to date") for problem in found)


def test_an_event_field_that_becomes_optional_or_nullable_is_caught():
    found = problems(changed("orders", **order_paid(
        version=3, total=Money(), payment_id=fields.String(required=True, allow_none=True))))
    assert found[0].startswith("orders.order_paid, data.total: becomes optional")
    assert found[1].startswith("orders.order_paid, data.payment_id: may now be null")


def test_an_event_field_with_new_values_is_caught():
    widened = Schema.from_dict({
        "order_id": id_field(required=True), "user_id": id_field(required=True),
        "reason": fields.String(required=True, validate=validate.OneOf(["cancelled", "fraud"]))})
    [problem] = problems(changed("orders", event="order_cancelled", payload=widened, version=3))
    assert problem.startswith("orders.order_cancelled, data.reason: may now send 'fraud'")


def test_a_removed_event_type_is_caught():
    [problem] = problems(changed("inventory", event="stock_reserved", remove=True))
    assert problem.startswith("inventory.stock_reserved: the event type is no longer published")


def test_a_changed_event_without_a_new_version_is_caught():
    grown = order_paid(currency=fields.String())
    [problem] = problems(changed("orders", **grown))
    assert problem == ("orders.order_paid: its data changed but its schema version is still 2; "
                       "raise the version in its contract to 3")


def test_a_new_optional_event_field_with_a_new_version_passes():
    assert problems(changed("orders", **order_paid(version=3, currency=fields.String()))) == []


def test_an_optional_argument_made_required_is_caught():
    arguments = Schema.from_dict({
        "user_id": id_field(required=True),
        "limit": fields.Integer(required=True), "offset": fields.Integer(load_default=0)})
    [problem] = problems(changed("orders", method="list_orders", arguments=arguments))
    assert problem.startswith("orders.list_orders, kwargs.limit: becomes required")


def test_a_new_required_argument_is_caught():
    arguments = Schema.from_dict({"product_id": id_field(required=True),
                                  "warehouse": fields.String(required=True)})
    [problem] = problems(changed("inventory", method="get_stock", arguments=arguments))
    assert problem.startswith("inventory.get_stock, kwargs.warehouse: is a new required field")


def test_narrower_accepted_values_are_caught():
    narrower = Schema.from_dict({
        "product_id": id_field(required=True),
        "quantity": fields.Integer(required=True, validate=validate.Range(min=1, max=1000))})
    found = problems(changed("inventory", method="add_stock", arguments=narrower))
    assert found == [
        "inventory.add_stock, kwargs.quantity: maximum changes from 1000000 to 1000; make it "
        "a new method (for example add_stock_v2) beside add_stock for one release; see "
        "docs/development.md#changing-an-event"]


def test_a_removed_argument_is_caught():
    [problem] = problems(changed("products", method="list", arguments=Schema.from_dict({
        "limit": fields.Integer(load_default=20), "offset": fields.Integer(load_default=0)})))
    assert problem.startswith("products.list, kwargs.after: is removed or renamed")


def test_an_argument_of_another_type_is_caught():
    [problem] = problems(changed("users", method="get_user", arguments=Schema.from_dict({
        "user_id": fields.String(required=True)})))
    assert problem.startswith("users.get_user, kwargs.user_id: no longer accepts integer")


def test_a_removed_rpc_method_is_caught():
    [problem] = problems(changed("products", method="get_many", remove=True))
    assert problem.startswith("products.get_many: the RPC method is gone")


def test_a_field_removed_from_a_result_is_caught():
    class Slimmer(OrderSchema):
        class Meta:
            exclude = ("expires_at",)

    found = problems(changed("orders", method="get_order", result=Slimmer))
    assert found == [
        "orders.get_order, result.expires_at: is removed or renamed, and the last release "
        "reads it; make it a new method (for example get_order_v2) beside get_order for "
        "one release; see docs/development.md#changing-an-event"]


def test_a_new_optional_argument_and_a_new_result_field_pass():
    class Wider(OrderSchema):
        currency = fields.String()

    arguments = Schema.from_dict({
        "order_id": id_field(required=True), "user_id": id_field(load_default=None),
        "with_history": fields.Boolean(load_default=False)})
    assert problems(changed("orders", method="get_order", arguments=arguments,
                            result=Wider)) == []


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda contract: contract.service)
def test_every_event_and_method_is_compared(contract):
    """The gate reads every event and method out of the document: removing
    any one of them is caught."""
    for event in contract.events:
        assert problems(changed(contract.service, event=event.name, remove=True))
    for method in contract.methods:
        assert problems(changed(contract.service, method=method.name, remove=True))
