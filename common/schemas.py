"""marshmallow pieces every boundary uses: loading with the shop's error,
money, ids and paging."""
import functools
import re
from decimal import Decimal

from marshmallow import (
    EXCLUDE, Schema, ValidationError, fields, validate, validates_schema)

from common.errors import InvalidInput, NotFound

MAX_ID = 2**31 - 1  # PostgreSQL integer; larger ids cannot exist
MAX_PRICE = Decimal("1000000.00")
MAX_PAGE_SIZE = 100
CENT = Decimal("0.01")  # prices are whole cents, in the API and in the databases


@functools.cache
def schema_of(schema_class):
    """One instance of ``schema_class`` for every load: building a schema,
    and the nested ones it builds on first use, cost more than a load, and
    a schema keeps nothing from one load to the next."""
    return schema_class()


def load(schema_class, data, message="Invalid input"):
    """``data`` loaded through ``schema_class`` (its one instance), raising
    :class:`InvalidInput` with the messages per field instead of
    marshmallow's ValidationError."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{message}: expected an object")
    try:
        return schema_of(schema_class).load(data)
    except ValidationError as exc:
        raise InvalidInput(message, details=field_messages(exc.messages)) from None


def field_messages(messages, prefix=""):
    """marshmallow's nested messages as ``{"items.0.quantity": ["..."]}``:
    one level, a list of sentences per field, whatever the nesting."""
    if isinstance(messages, list):
        return {prefix or "_schema": messages}
    flat = {}
    for key, value in messages.items():
        flat.update(field_messages(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class Money(fields.Field):
    """An amount such as ``"12.50"``: a decimal string (or a Decimal, from a
    Python caller) with at most two places. Loaded as a ``Decimal`` quantized
    to cents, dumped as a string with two places. Numbers are refused, with a
    message that says so: a JSON number is a float to most clients, and a
    float cannot hold a price exactly."""

    pattern = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
    default_error_messages = {
        "invalid": 'Must be a decimal amount with at most 2 decimal places, such as "12.50".',
        "number": 'Must be a string such as "12.50", not a number: money is never a float here.',
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, Decimal) and value.is_finite():
            text = format(value, "f")
        elif isinstance(value, str):
            text = value.strip()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            raise self.make_error("number")
        else:
            raise self.make_error("invalid")
        if not self.pattern.match(text):
            raise self.make_error("invalid")
        return Decimal(text).quantize(CENT)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return format(Decimal(value).quantize(CENT), "f")


def price_field(**kwargs):
    return Money(
        validate=validate.Range(min=Decimal(0), min_inclusive=False, max=MAX_PRICE), **kwargs)


def id_field(**kwargs):
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def load_id(value, entity):
    """The id of an ``entity`` ("product") given as an RPC argument.

    A non-integer is invalid input. An integer outside 1..MAX_ID is not found:
    no row can have it (and SQLite cannot even compare it past 2**63).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"Invalid {entity} id",
                           details={f"{entity}_id": ["Not a valid integer."]})
    if not 1 <= value <= MAX_ID:
        raise NotFound.entity(entity, value)
    return value


class PageSchema(Schema):
    """``limit`` and ``offset`` of a listing."""

    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(
        load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class KeysetPageSchema(PageSchema):
    """``limit``, and ``offset`` or ``after``: the rows after the one whose id
    is ``after``, in id order (a keyset page: as cheap at any depth, where an
    offset is walked up to)."""

    after = fields.Integer(validate=validate.Range(min=0, max=MAX_ID))

    @validates_schema
    def offset_or_after(self, data, **kwargs):
        if "after" in data and data["offset"]:
            raise ValidationError("Give offset or after, not both.", "after")


MAX_CATEGORY_LENGTH = 50
MAX_QUERY_LENGTH = 200
SORTS = ("relevance", "newest", "price", "-price", "name")
NOT_BLANK = validate.Regexp(r"\S", error="Must not be blank.")


def no_nul(value):
    """Text a database keeps: PostgreSQL's text cannot hold U+0000 (SQLite's
    can), so it is refused alike on both."""
    if "\x00" in value:
        raise ValidationError("Must not contain the NUL character (U+0000).")


def text_field(max_length, **kwargs):
    """Free text of at most ``max_length`` characters that a database keeps or searches."""
    return fields.String(validate=[validate.Length(max=max_length), no_nul], **kwargs)


def category_field(**kwargs):
    """A category's name: 1 to 50 characters, not blank."""
    return fields.String(
        validate=[validate.Length(min=1, max=MAX_CATEGORY_LENGTH), NOT_BLANK, no_nul], **kwargs)


class CatalogueQuerySchema(KeysetPageSchema):
    """A search of the catalogue: words, filters and an order, with a page
    (``GET /products``, and products.search's arguments in their order).
    ``after`` pages in id order only: with neither ``q`` nor ``sort``."""

    class Meta(KeysetPageSchema.Meta):
        fields = ("q", "category", "min_price", "max_price", "sort", "limit", "offset", "after")

    q = text_field(MAX_QUERY_LENGTH, metadata={
        "description": "words to find in the name and description, any case: a word is found "
                       "where a word starts with it (mok finds Moka); text with punctuation, "
                       "or in a script without spaces (咖啡), anywhere. Text, never syntax"})
    category = category_field()
    min_price = price_field()
    max_price = price_field()
    sort = fields.String(validate=validate.OneOf(SORTS), metadata={
        "description": "relevance (the default with q: matches in the name first), newest, "
                       "price, -price (dearest first) or name; without q or sort, id order"})

    @validates_schema
    def consistent(self, data, **kwargs):
        if "after" in data and ("q" in data or "sort" in data):
            raise ValidationError("after pages in id order: use offset with q or sort.", "after")
        if "min_price" in data and "max_price" in data and data["min_price"] > data["max_price"]:
            raise ValidationError("Must not be above max_price.", "min_price")


# an Idempotency-Key: printable ASCII, no space at either end (HTTP would strip it)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$"


def printable_key(value):
    # fullmatch: a pattern's $ would let a trailing newline through
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, value):
        raise ValidationError(
            "Must be 1 to 255 printable ASCII characters, with no space at either end.")


class IdempotencyKeySchema(Schema):
    key = fields.String(required=True, data_key="Idempotency-Key", validate=printable_key)
