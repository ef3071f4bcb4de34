"""The bodies the HTTP API accepts. The domain services check their own
rules again; these are the API's contract."""
from marshmallow import Schema, fields, validate

from common.schemas import (
    NOT_BLANK, CatalogueQuerySchema, PageSchema, category_field, id_field, no_nul, price_field,
    text_field)


class RegisterBody(Schema):
    username = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9_.-]{3,32}$",
        error="Must be 3 to 32 characters: letters, digits, '_', '.' or '-'."))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))


class LoginBody(Schema):
    username = fields.String(required=True, validate=validate.Length(max=32))
    password = fields.String(required=True, validate=validate.Length(max=128))


class ProductBody(Schema):
    name = fields.String(required=True,
                         validate=[validate.Length(min=1, max=200), NOT_BLANK, no_nul])
    description = text_field(5000)
    price = price_field(required=True)
    category = category_field(allow_none=True, metadata={"description": "null: in no category"})


class ProductPatchBody(ProductBody):
    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)



class OrderListQuery(PageSchema):
    scope = fields.String(load_default="mine", validate=validate.OneOf(("mine", "all")), metadata={
        "description": "mine: the caller's orders; all: every customer's (an admin only)"})


class StockQuantityBody(Schema):
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))


class OrderItemBody(Schema):
    product_id = id_field(required=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))


class OrderBody(Schema):
    items = fields.List(fields.Nested(OrderItemBody), required=True,
                        validate=validate.Length(min=1, max=50))


# What the API answers: the contract the OpenAPI document publishes.

class ErrorOut(Schema):
    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True, metadata={"description": "a sentence for humans"})
    details = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "messages per invalid field; a nested field as a dotted path "
                              "such as items.0.quantity"})


class UserOut(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(("customer", "admin")))


class TokenOut(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.Equal("bearer"))
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})


class ProductOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = price_field(required=True)
    category = fields.String(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class _Page(Schema):
    total = fields.Integer(required=True, metadata={"description": "items in all pages"})
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


class ProductPage(CatalogueQuerySchema):
    """The page, and what was asked."""

    items = fields.List(fields.Nested(ProductOut), required=True)
    total = fields.Integer(required=True, metadata={"description": "products matching, in all "
                                                                   "pages"})


class CategoryOut(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True, metadata={"description": "products in it"})


class CategoriesOut(Schema):
    items = fields.List(fields.Nested(CategoryOut), required=True)


class StockOut(Schema):
    product_id = fields.Integer(required=True)
    on_hand = fields.Integer(required=True)
    reserved = fields.Integer(required=True)
    available = fields.Integer(required=True)


class OrderLineOut(Schema):
    product_id = fields.Integer(required=True)
    name = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = price_field(required=True)


class ShortLineOut(Schema):
    product_id = fields.Integer(required=True)
    requested = fields.Integer(required=True)
    available = fields.Integer(required=True)


class OrderOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf((
        "pending", "awaiting_payment", "paid", "rejected", "cancelled", "expired")))
    items = fields.List(fields.Nested(OrderLineOut), required=True)
    total = price_field(required=True)
    reason = fields.String(required=True, allow_none=True)
    short = fields.List(fields.Nested(ShortLineOut), required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True, allow_none=True)


class OrderPage(_Page):
    items = fields.List(fields.Nested(OrderOut), required=True)


class ServiceCheckOut(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ok", "unavailable")))
    version = fields.String()
    revision = fields.String()
    error = fields.String()


class HealthOut(Schema):
    status = fields.String(required=True)
    version = fields.String(required=True)
    revision = fields.String(required=True)
    services = fields.Dict(keys=fields.String(), values=fields.Nested(ServiceCheckOut),
                           required=True)


class ReadyOut(Schema):
    status = fields.String(required=True)
    services = fields.Dict(keys=fields.String(), values=fields.Nested(ServiceCheckOut),
                           required=True)
    error = fields.String()
    message = fields.String()
