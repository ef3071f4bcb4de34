"""What orders accepts (RPC arguments, the products it reads, the events it
handles) and what it answers."""
from marshmallow import EXCLUDE, Schema, fields, validate

from common.schemas import MAX_PAGE_SIZE, Money, id_field, price_field
from orders.domain import MAX_LINE_QUANTITY

MAX_ORDER_LINES = 50


class ItemSchema(Schema):
    product_id = id_field(required=True)
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_LINE_QUANTITY))


class PlaceOrderSchema(Schema):
    user_id = id_field(required=True)
    items = fields.List(fields.Nested(ItemSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_ORDER_LINES))


class ListAllOrdersSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class ListOrdersSchema(ListAllOrdersSchema):
    user_id = id_field(required=True)


class _Incoming(Schema):
    # a producer may add fields; orders reads the ones it knows
    class Meta:
        unknown = EXCLUDE


class CatalogueProductSchema(_Incoming):
    """A product as products.get_many answers it, and as the product_created
    and product_updated events carry it."""

    id = id_field(required=True)
    name = fields.String(required=True, validate=validate.Length(max=200))
    price = price_field(required=True)
    updated_at = fields.AwareDateTime(required=True)


class ProductDeletedSchema(_Incoming):
    id = id_field(required=True)


class StockReservedSchema(_Incoming):
    order_id = id_field(required=True)


class ShortLineSchema(_Incoming):
    product_id = id_field(required=True)
    requested = fields.Integer(required=True, strict=True)
    available = fields.Integer(required=True, strict=True)


class StockReservationFailedSchema(_Incoming):
    order_id = id_field(required=True)
    reason = fields.String(required=True, validate=validate.Length(max=200))
    short = fields.List(fields.Nested(ShortLineSchema), required=True)


class OrderLineSchema(Schema):
    product_id = fields.Integer()
    name = fields.String()
    quantity = fields.Integer()
    unit_price = Money()


class OrderSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    status = fields.String()
    items = fields.List(fields.Nested(OrderLineSchema), attribute="lines")
    total = Money()
    reason = fields.String(allow_none=True)
    short = fields.List(fields.Dict(), allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime(allow_none=True)
