from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError

from common.schemas import price_field


class PriceSchema(Schema):
    price = price_field(required=True)


@pytest.mark.parametrize("given, loaded", [
    ("12.50", Decimal("12.50")),
    ("12.5", Decimal("12.50")),
    ("7", Decimal("7.00")),
    (Decimal("0.01"), Decimal("0.01")),
    (Decimal("1E+2"), Decimal("100.00")),
    (" 4.20 ", Decimal("4.20")),
])
def test_price_loads_exact_decimals(given, loaded):
    assert PriceSchema().load({"price": given})["price"] == loaded


@pytest.mark.parametrize("given", [
    "12.345", "0", "0.00", "-1.00", "abc", "", "1e3", "NaN", "1_000", "1000000.01",
    12.5, True, None, Decimal("Infinity"), [], {},
])
def test_price_refuses_what_is_not_an_exact_positive_amount(given):
    with pytest.raises(ValidationError) as error:
        PriceSchema().load({"price": given})
    assert "price" in error.value.messages


@pytest.mark.parametrize("number", [12.5, 3, 0.1])
def test_a_number_is_refused_with_a_message_that_says_so(number):
    with pytest.raises(ValidationError) as error:
        PriceSchema().load({"price": number})
    assert error.value.messages == {"price": [
        'Must be a string such as "12.50", not a number: money is never a float here.']}


def test_price_dumps_two_places_as_a_string():
    assert PriceSchema().dump({"price": Decimal("5")}) == {"price": "5.00"}
