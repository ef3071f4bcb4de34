from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from common.schemas import category_field, id_field, no_nul, price_field, text_field

MAX_DESCRIPTION_LENGTH = 5000
MAX_BATCH = 100
CHANGEABLE_FIELDS = ("name", "price", "description", "category")
# what product_updated (0.1.0's event) can name in changed; product_changed names any field
UPDATED_FIELDS = ("name", "price", "description")


# not common.schemas.NOT_BLANK: a pattern would show in the published contract
# as a narrower argument, though it refuses the same names
def _not_blank(value):
    if not value.strip():
        raise ValidationError("Must not be blank.")


class ProductFieldsSchema(Schema):
    """The fields a client sets on a product (in the order of ``create``'s parameters)."""

    name = fields.String(required=True,
                         validate=[validate.Length(min=1, max=200), _not_blank, no_nul])
    price = price_field(required=True)
    description = text_field(MAX_DESCRIPTION_LENGTH, load_default="")
    category = category_field(load_default=None, allow_none=True,
                              metadata={"description": "null: in no category"})


class ProductChangesSchema(ProductFieldsSchema):
    """A partial update: any of the fields, at least one."""

    def __init__(self, **kwargs):
        super().__init__(partial=True, **kwargs)

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError(f"Give at least one of {', '.join(CHANGEABLE_FIELDS)}.")


class ProductIdsSchema(Schema):
    ids = fields.List(id_field(), required=True, validate=validate.Length(max=MAX_BATCH))


class ProductSchema(Schema):
    """A product as the service answers it, and as ``product_created`` carries it."""

    id = id_field(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = price_field(required=True)
    category = fields.String(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


def dump_product(product):
    """What ``ProductSchema().dump`` makes of a product (an object or a row),
    written out: marshmallow's field by field dump was a tenth of the
    service's time in a search, which answers twenty products at a time.
    tests/unit/test_products_service.py holds the two equal."""
    return {"id": product.id, "name": product.name, "description": product.description,
            "price": format(product.price, "f"), "category": product.category,
            "created_at": product.created_at.isoformat(),
            "updated_at": product.updated_at.isoformat()}


class ProductUpdatedSchema(ProductSchema):
    """``product_updated``: the product as it now is, and which of the
    fields 0.1.0 knew changed. Published beside ``product_changed`` until
    0.4.0, for consumers still on 0.2.0."""

    changed = fields.List(fields.String(validate=validate.OneOf(UPDATED_FIELDS)),
                          required=True, validate=validate.Length(min=1))


class ProductChangedSchema(ProductSchema):
    """``product_changed``: the product as it now is, and which fields
    changed. A consumer ignores names in ``changed`` it does not know:
    fields are added over time."""

    changed = fields.List(fields.String(validate=validate.Length(min=1)), required=True,
                          validate=validate.Length(min=1))


class CategorySchema(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True, metadata={"description": "products in it"})


class CategoriesSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema), required=True)


class ProductDeletedSchema(Schema):
    id = id_field(required=True)
