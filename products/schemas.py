from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from common.schemas import id_field, price_field

MAX_DESCRIPTION_LENGTH = 5000
MAX_BATCH = 100


def _not_blank(value):
    if not value.strip():
        raise ValidationError("Must not be blank.")


class ProductFieldsSchema(Schema):
    """The fields a client sets on a product."""

    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    description = fields.String(
        load_default="", validate=validate.Length(max=MAX_DESCRIPTION_LENGTH))
    price = price_field(required=True)


class ProductChangesSchema(ProductFieldsSchema):
    """A partial update: any of the fields, at least one."""

    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of name, description, price.")


class ProductIdsSchema(Schema):
    ids = fields.List(id_field(), required=True, validate=validate.Length(max=MAX_BATCH))


class ProductSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    price = price_field()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
