"""The bodies the HTTP API accepts. The domain services check their own
rules again; these are the API's contract."""
from marshmallow import Schema, fields, validate

from common.schemas import price_field


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

