from decimal import Decimal

import pytest
from marshmallow import Schema, fields
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from common.errors import InvalidInput
from common.schemas import field_messages, price_field
from common.web.json_http import MAX_BODY_BYTES, JsonRequest, load_body


class Body(Schema):
    name = fields.String(required=True)
    price = price_field()


def request_with(data, content_type="application/json"):
    return JsonRequest(EnvironBuilder(method="POST", data=data, content_type=content_type).get_environ())


def test_a_json_object_is_loaded_with_exact_decimals():
    body = load_body(request_with(b'{"name": "mug", "price": "12.5"}'), Body)
    assert body == {"name": "mug", "price": Decimal("12.50")}


@pytest.mark.parametrize("price", [b"12.5", b"12", b"1e400"])
def test_a_json_number_is_not_money(price):
    with pytest.raises(InvalidInput) as error:
        load_body(request_with(b'{"name": "mug", "price": %s}' % price), Body)
    assert list(error.value.details) == ["price"]
    assert "not a number" in error.value.details["price"][0]


@pytest.mark.parametrize("data", [b"", b"   ", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe",
                                  b'{"name": "x", "price": NaN}',
                                  b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"])
def test_what_is_not_a_json_object_is_malformed(data):
    with pytest.raises(InvalidInput) as error:
        load_body(request_with(data), Body)
    assert error.value.code == "malformed_body"


def test_invalid_fields_are_named_in_details():
    with pytest.raises(InvalidInput) as error:
        load_body(request_with(b'{"price": "1.001"}'), Body)
    assert set(error.value.details) == {"name", "price"}


def test_a_body_over_one_mebibyte_is_refused():
    with pytest.raises(RequestEntityTooLarge):
        load_body(request_with(b"x" * (MAX_BODY_BYTES + 1)), Body)


def test_nested_validation_messages_are_flattened_to_dotted_fields():
    assert field_messages({"items": {0: {"quantity": ["Too big."]}, 2: {"product_id": ["No."]}},
                           "name": ["Missing."]}) == {
        "items.0.quantity": ["Too big."], "items.2.product_id": ["No."], "name": ["Missing."]}
