"""The bodies the HTTP API accepts. The domain services check their own
rules again; these are the API's contract."""
from marshmallow import Schema, fields, validate

from common.schemas import id_field, price_field


class RegisterBody(Schema):
    username = fields.String(required=True, validate=validate.Length(min=3, max=32))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))


class LoginBody(Schema):
    username = fields.String(required=True, validate=validate.Length(max=32))
    password = fields.String(required=True, validate=validate.Length(max=128))


class ProductBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    price = price_field(required=True)


class ProductPatchBody(ProductBody):
    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)



class StockQuantityBody(Schema):
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))


class OrderItemBody(Schema):
    product_id = id_field(required=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))


class OrderBody(Schema):
    items = fields.List(fields.Nested(OrderItemBody), required=True,
                        validate=validate.Length(min=1, max=50))
