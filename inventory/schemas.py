"""What inventory accepts (RPC arguments and the events it handles) and answers."""
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from common.schemas import id_field
from inventory.domain import INSUFFICIENT_STOCK

MAX_QUANTITY_CHANGE = 1_000_000
MAX_BATCH = 100
MAX_ORDER_LINES = 50
MAX_LINE_QUANTITY = 1000
# orders expires at most 500 per batch; room for a larger batch setting
MAX_EXPIRED_ORDERS = 1000


class StockChangeSchema(Schema):
    product_id = id_field(required=True)
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY_CHANGE))


class ProductIdsSchema(Schema):
    ids = fields.List(id_field(), required=True, validate=validate.Length(max=MAX_BATCH))


class StockSchema(Schema):
    product_id = fields.Integer()
    on_hand = fields.Integer()
    reserved = fields.Integer()
    available = fields.Integer()


class StockReservedSchema(Schema):
    """``stock_reserved``: every line of the order is reserved."""

    order_id = id_field(required=True)


class ShortageSchema(Schema):
    product_id = id_field(required=True)
    requested = fields.Integer(required=True, strict=True)
    available = fields.Integer(required=True, strict=True)


class StockReservationFailedSchema(Schema):
    """``stock_reservation_failed``: nothing is reserved; ``short`` lists the
    lines that could not be."""

    order_id = id_field(required=True)
    reason = fields.String(required=True, validate=validate.OneOf([INSUFFICIENT_STOCK]))
    short = fields.List(fields.Nested(ShortageSchema), required=True)


class _EventData(Schema):
    # producers may add fields; a consumer reads the ones it knows
    class Meta:
        unknown = EXCLUDE


class ProductCreatedSchema(_EventData):
    id = id_field(required=True)


class ReservationLineSchema(_EventData):
    product_id = id_field(required=True)
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_LINE_QUANTITY))


class ReservationRequestSchema(_EventData):
    """``stock_reservation_requested`` from orders."""

    order_id = id_field(required=True)
    items = fields.List(
        fields.Nested(ReservationLineSchema), required=True,
        validate=validate.Length(min=1, max=MAX_ORDER_LINES))

    @validates_schema
    def one_line_per_product(self, data, **kwargs):
        product_ids = [line["product_id"] for line in data.get("items", [])]
        if len(product_ids) != len(set(product_ids)):
            raise ValidationError("Each product may appear on one line only.", "items")


class OrderEventSchema(_EventData):
    """``order_paid`` and ``order_cancelled`` from orders."""

    order_id = id_field(required=True)


class OrdersExpiredSchema(_EventData):
    """``orders_expired`` from orders: a batch of orders whose reservations ran out."""

    order_ids = fields.List(id_field(), required=True,
                            validate=validate.Length(min=1, max=MAX_EXPIRED_ORDERS))
