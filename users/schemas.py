from marshmallow import Schema, fields, validate

from common.schemas import id_field
from users.models import ADMIN, CUSTOMER

USERNAME_RULE = validate.Regexp(
    r"^[A-Za-z0-9_.-]{3,32}$",
    error="Must be 3 to 32 characters: letters, digits, '_', '.' or '-'.")
# argon2 hashes any length; the upper bound only keeps requests small
PASSWORD_LENGTH = validate.Length(min=8, max=128)


class RegistrationSchema(Schema):
    username = fields.String(required=True, validate=USERNAME_RULE)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=PASSWORD_LENGTH)


class CredentialsSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(max=32))
    password = fields.String(required=True, validate=validate.Length(max=128))


class UserIdsSchema(Schema):
    ids = fields.List(id_field(), required=True, validate=validate.Length(max=100))


class UserSchema(Schema):
    """A user as the service answers it, and as ``user_registered`` carries
    it: never the password or its hash."""

    id = id_field(required=True)
    username = fields.String(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf([CUSTOMER, ADMIN]))


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.OneOf(["bearer"]))
    expires_in = fields.Integer(required=True)
