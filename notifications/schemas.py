"""What the notifications service reads from the others' events: only the
fields it uses, and unknown ones ignored, so a later release may add to them."""
from marshmallow import EXCLUDE, Schema, fields, validate

from common.schemas import Money, id_field


class _EventData(Schema):
    class Meta:
        unknown = EXCLUDE


class UserRegisteredSchema(_EventData):
    """``user_registered`` from users."""

    id = id_field(required=True)
    username = fields.String(required=True, validate=validate.Length(min=1, max=32))
    email = fields.Email(required=True, validate=validate.Length(max=254))


class UserSchema(UserRegisteredSchema):
    """A user as ``users.get_user`` answers it."""


class OrderLineSchema(_EventData):
    name = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = Money(required=True)


class ShortProductSchema(_EventData):
    name = fields.String(required=True)
    requested = fields.Integer(required=True)
    available = fields.Integer(required=True)


class OrderSchema(_EventData):
    """An order as ``orders.get_order`` answers it: what a mail about an
    order needs when its event came from a release that did not carry it."""

    order_id = id_field(required=True, data_key="id")
    user_id = id_field(required=True)
    total = Money(required=True)
    items = fields.List(fields.Nested(OrderLineSchema), required=True)


# Events from orders. Releases up to 0.2.0 sent order_paid, order_cancelled
# and orders_expired without the customer (schema version 1): ``user_id`` (and
# a receipt's ``items``) are then None, and the order is asked of orders.

class OrderPaidSchema(_EventData):
    order_id = id_field(required=True)
    user_id = id_field(load_default=None)
    total = Money(required=True)
    items = fields.List(fields.Nested(OrderLineSchema), load_default=None)


class OrderRejectedSchema(_EventData):
    order_id = id_field(required=True)
    user_id = id_field(required=True)
    short = fields.List(fields.Nested(ShortProductSchema), required=True)


class OrderCancelledSchema(_EventData):
    order_id = id_field(required=True)
    user_id = id_field(load_default=None)


class ExpiredOrderSchema(_EventData):
    order_id = id_field(required=True)
    user_id = id_field(required=True)


class OrdersExpiredSchema(_EventData):
    order_ids = fields.List(id_field(), required=True, validate=validate.Length(min=1))
    orders = fields.List(fields.Nested(ExpiredOrderSchema), load_default=None)
