"""What orders accepts (RPC arguments, the products it reads, the events it
handles) and what it answers."""
from marshmallow import EXCLUDE, Schema, fields, validate

from common.schemas import MAX_PAGE_SIZE, Money, id_field, price_field, printable_key
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


def idempotency_key_field():
    """The ``idempotency_key`` argument (orders.idempotency); None: not keyed."""
    return fields.String(load_default=None, allow_none=True, validate=printable_key)


def _page_fields():
    return {
        "limit": fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)),
        "offset": fields.Integer(load_default=0, validate=validate.Range(min=0)),
    }


# in the order of list_all_orders' and list_orders' parameters
ListAllOrdersSchema = Schema.from_dict(_page_fields(), name="ListAllOrdersSchema")
ListOrdersSchema = Schema.from_dict(
    {"user_id": id_field(required=True), **_page_fields()}, name="ListOrdersSchema")


class _Incoming(Schema):
    # a producer may add fields; orders reads the ones it knows
    class Meta:
        unknown = EXCLUDE


class CatalogueProductSchema(_Incoming):
    """A product as products.get_many answers it, and as the product_created,
    product_changed and product_updated events carry it."""

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


class StockReservationRequestedSchema(Schema):
    """``stock_reservation_requested``: the stock an order needs, one line per product."""

    order_id = id_field(required=True)
    items = fields.List(fields.Nested(ItemSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_ORDER_LINES))


class OrderLineSchema(Schema):
    product_id = fields.Integer(required=True)
    name = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = Money(required=True)


class OrderPaidSchema(Schema):
    """``order_paid``: what was bought, at what price, by whom (version 2
    added ``user_id`` and ``items``, for the receipt)."""

    order_id = id_field(required=True)
    user_id = id_field(required=True)
    total = Money(required=True)
    payment_id = fields.String(required=True)
    items = fields.List(fields.Nested(OrderLineSchema), required=True)


class OrderCancelledSchema(Schema):
    order_id = id_field(required=True)
    user_id = id_field(required=True)  # from version 2
    reason = fields.String(required=True, validate=validate.OneOf(["cancelled"]))


class ShortProductSchema(Schema):
    product_id = id_field(required=True)
    name = fields.String(required=True)
    requested = fields.Integer(required=True)
    available = fields.Integer(required=True)


class OrderRejectedSchema(Schema):
    """``order_rejected``: inventory could not reserve an order's stock."""

    order_id = id_field(required=True)
    user_id = id_field(required=True)
    reason = fields.String(required=True)
    short = fields.List(fields.Nested(ShortProductSchema), required=True)


class ExpiredOrderSchema(Schema):
    order_id = id_field(required=True)
    user_id = id_field(required=True)


class OrdersExpiredSchema(Schema):
    """``orders_expired``: a batch of orders whose reservations ran out;
    ``orders`` (version 2) names each one's customer."""

    order_ids = fields.List(id_field(), required=True, validate=validate.Length(min=1))
    orders = fields.List(fields.Nested(ExpiredOrderSchema), required=True,
                         validate=validate.Length(min=1))


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
