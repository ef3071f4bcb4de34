"""What the notifications service reads from the others' events: only the
fields it uses, and unknown ones ignored, so a later release may add to them."""
from marshmallow import EXCLUDE, Schema, fields, validate

from common.schemas import id_field


class _EventData(Schema):
    class Meta:
        unknown = EXCLUDE


class UserRegisteredSchema(_EventData):
    """``user_registered`` from users."""

    id = id_field(required=True)
    username = fields.String(required=True, validate=validate.Length(min=1, max=32))
    email = fields.Email(required=True, validate=validate.Length(max=254))
