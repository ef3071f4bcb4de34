"""Config access: read config.yaml exactly as ``nameko run`` does, and refuse
to start a service on a missing or invalid setting with one line naming it.

config.yaml is the one source of settings; each value in it can be overridden
from the environment with nameko's ``${NAME:default}`` syntax.
"""
import re
from urllib.parse import urlsplit

import yaml
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from nameko.cli.main import setup_yaml_parser
from nameko.exceptions import ConfigurationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_CONFIG_PATH = "config.yaml"
# config.yaml's default JWT secret, for a local run only
DEVELOPMENT_JWT_SECRET = "local-development-secret-change-me-0123456789"
# psycopg2 yields to eventlet; psycopg 3 and others block every worker
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg2")


def load_config(path=DEFAULT_CONFIG_PATH):
    """The config as ``nameko run --config path`` sees it, env vars substituted."""
    setup_yaml_parser()
    with open(path) as config_file:
        return yaml.safe_load(config_file)


def database_uri(config, service_name):
    try:
        uri = (config.get("DB_URIS") or {})[service_name]
    except KeyError:
        raise ConfigurationError(f"Missing setting DB_URIS.{service_name}") from None
    if not uri:
        raise ConfigurationError(f"Missing setting DB_URIS.{service_name}")
    return uri


class DatabaseUri(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        uri = super()._deserialize(value, attr, data, **kwargs)
        try:
            driver = make_url(uri).drivername
        except ArgumentError:
            raise ValidationError(f"{uri!r} is not a database URI") from None
        if driver not in SUPPORTED_DRIVERS:
            raise ValidationError(
                f"{driver!r} is not supported; use sqlite:/// or postgresql://")
        return uri


class _Section(Schema):
    class Meta:
        unknown = EXCLUDE


class JwtSettings(_Section):
    # HS256 keys shorter than the hash output are guessable offline
    SECRET = fields.String(required=True, validate=validate.Length(min=32))
    LIFETIME_SECONDS = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=60, max=30 * 24 * 3600))


class AdminSettings(_Section):
    USERNAME = fields.String(allow_none=True)
    PASSWORD = fields.String(allow_none=True)
    EMAIL = fields.Email(allow_none=True)

    @validates_schema
    def both_or_neither(self, data, **kwargs):
        username, password = data.get("USERNAME"), data.get("PASSWORD")
        if bool(username) != bool(password):
            raise ValidationError(
                "set both SHOP_ADMIN_USERNAME and SHOP_ADMIN_PASSWORD, or neither")
        if password and len(password) < 8:
            raise ValidationError("must be at least 8 characters", "PASSWORD")


class PaymentSettings(_Section):
    PROVIDER = fields.String(
        required=True,
        validate=validate.Regexp(r"^[\w.]+\.\w+$", error="must be a dotted class path"))
    DECLINE = fields.Boolean(required=True)


class EventRetrySettings(_Section):
    MAX_ATTEMPTS = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100))
    FIRST_DELAY_MS = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=60_000))


class RpcSettings(_Section):
    TIMEOUT_SECONDS = fields.Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, max=300))
    BREAKER_FAILURES = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=1000))
    BREAKER_RESET_SECONDS = fields.Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, max=3600))


class MetricsSettings(_Section):
    HOST = fields.String(load_default="127.0.0.1")
    # a port per domain service; 0 picks a free one, null serves none
    PORTS = fields.Dict(keys=fields.String(), values=fields.Integer(
        allow_none=True, validate=validate.Range(min=0, max=65535)), load_default=dict)


class CatalogueCacheSettings(_Section):
    ENABLED = fields.Boolean(load_default=True)
    MAX_ENTRIES = fields.Integer(
        load_default=10_000, strict=True, validate=validate.Range(min=1, max=10_000_000))
    TTL_SECONDS = fields.Float(
        load_default=30, validate=validate.Range(min=0, min_inclusive=False, max=86_400))


class OutboxSettings(_Section):
    # how long sent events are kept before the relay prunes them (7 days)
    RETENTION_SECONDS = fields.Float(
        load_default=7 * 24 * 3600, validate=validate.Range(min=0))


class IdempotencySettings(_Section):
    # how long the orders service keeps a client's Idempotency-Key (24 h)
    KEY_TTL_SECONDS = fields.Float(
        load_default=24 * 3600, validate=validate.Range(min=0, min_inclusive=False))


class ShutdownSettings(_Section):
    # how long a stopping HTTP service answers not ready before it stops accepting
    DRAIN_SECONDS = fields.Float(load_default=0, validate=validate.Range(min=0, max=300))


class TracingSettings(_Section):
    # empty: otlp if OTLP_ENDPOINT is set, else none
    EXPORTER = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(("", "none", "otlp", "memory")))
    OTLP_ENDPOINT = fields.String(load_default="", allow_none=True)

    @validates_schema
    def endpoint_for_otlp(self, data, **kwargs):
        if data.get("EXPORTER") == "otlp" and not data.get("OTLP_ENDPOINT"):
            raise ValidationError({"OTLP_ENDPOINT": ["is needed with EXPORTER otlp"]})


class MailSettings(_Section):
    # "Shop <shop@example.com>" or a bare address
    FROM = fields.String(load_default="Shop <shop@localhost>", validate=validate.Regexp(
        r"^([^<>]*<)?[^@\s<>]+@[^@\s<>]+>?$", error="must be an address, or Name <address>"))
    # where mails are written as .eml files when no SMTP_HOST is set
    DIRECTORY = fields.String(load_default="var/mail")


class SmtpSettings(_Section):
    # empty: no server, mails are written under MAIL.DIRECTORY
    HOST = fields.String(load_default=None, allow_none=True)
    PORT = fields.Integer(load_default=25, validate=validate.Range(min=1, max=65535))
    USERNAME = fields.String(load_default=None, allow_none=True)
    PASSWORD = fields.String(load_default=None, allow_none=True)
    STARTTLS = fields.Boolean(load_default=False)
    TIMEOUT_SECONDS = fields.Float(
        load_default=10, validate=validate.Range(min=0, min_inclusive=False, max=300))

    @validates_schema
    def password_with_username(self, data, **kwargs):
        if bool(data.get("USERNAME")) != bool(data.get("PASSWORD")):
            raise ValidationError("set both SMTP_USERNAME and SMTP_PASSWORD, or neither")


class ShopSettings(_Section):
    """Every setting the shop reads. Services check it before they start."""

    ENVIRONMENT = fields.String(
        load_default="development", validate=validate.OneOf(("development", "production")))

    AMQP_URI = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^\s*(py)?amqps?://[^;]*(;\s*(py)?amqps?://[^;]*)*$",
            error="must be amqp://... or amqps://..., or several of them separated by ;"))
    # seconds between AMQP heartbeats, read by nameko: a dead node is noticed
    # within two of them
    HEARTBEAT = fields.Integer(load_default=60, validate=validate.Range(min=1, max=600))
    WEB_SERVER_ADDRESS = fields.String(
        required=True,
        validate=validate.Regexp(r"^([^:\s]+:)?\d{1,5}$", error="must be [host:]port"))
    max_workers = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=1000))
    DB_URIS = fields.Dict(keys=fields.String(), values=DatabaseUri(), required=True)
    JWT = fields.Nested(JwtSettings, required=True)
    ADMIN = fields.Nested(AdminSettings, load_default=dict)
    RESERVATION_TTL_SECONDS = fields.Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False))
    EXPIRY_CHECK_SECONDS = fields.Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, max=3600))
    PAYMENTS = fields.Nested(PaymentSettings, required=True)
    EVENT_RETRY = fields.Nested(EventRetrySettings, required=True)
    RPC = fields.Nested(RpcSettings, required=True)
    METRICS = fields.Nested(MetricsSettings, load_default=dict)
    TRACING = fields.Nested(TracingSettings, load_default=dict)
    CATALOGUE_CACHE = fields.Nested(CatalogueCacheSettings, load_default=dict)
    OUTBOX = fields.Nested(OutboxSettings, load_default=dict)
    IDEMPOTENCY = fields.Nested(IdempotencySettings, load_default=dict)
    SHUTDOWN = fields.Nested(ShutdownSettings, load_default=dict)
    MAIL = fields.Nested(MailSettings, load_default=dict)
    SMTP = fields.Nested(SmtpSettings, load_default=dict)

    @validates_schema
    def production_safe(self, data, **kwargs):
        if data.get("ENVIRONMENT") != "production":
            return
        unsafe = {}
        if data.get("JWT", {}).get("SECRET") == DEVELOPMENT_JWT_SECRET:
            unsafe["JWT.SECRET"] = ["is the development default; set JWT_SECRET"]
        nodes = [urlsplit(uri.strip()) for uri in data.get("AMQP_URI", "").split(";")]
        if any((node.username, node.password) == ("guest", "guest") for node in nodes):
            unsafe["AMQP_URI"] = ["uses the default guest account; set AMQP_URI"]
        if unsafe:
            raise ValidationError({
                name: [f"{message} (SHOP_ENV=production)" for message in messages]
                for name, messages in unsafe.items()})


def settings_section(config, name):
    """One section of the config (a nested one of ShopSettings), checked and
    with its defaults filled in."""
    try:
        return ShopSettings().fields[name].schema.load((config or {}).get(name) or {})
    except ValidationError as exc:
        raise ConfigurationError(
            "Invalid settings in config.yaml: " + "; ".join(_flatten(exc.messages, name))) from None


def check_settings(config):
    """Validate ``config``; raise ConfigurationError with one line naming
    every setting that is missing or invalid."""
    try:
        ShopSettings().load(config or {})
    except ValidationError as exc:
        raise ConfigurationError(
            "Invalid settings in config.yaml: " + "; ".join(_flatten(exc.messages))) from None


def _flatten(messages, path=""):
    for key, value in messages.items():
        # marshmallow nests Dict errors under "key"/"value"; the key says enough
        name = "" if key in ("_schema", "key", "value") else key
        here = ".".join(part for part in (path, str(name)) if part)
        if isinstance(value, dict):
            yield from _flatten(value, here)
        else:
            text = " ".join(value) if isinstance(value, list) else str(value)
            text = re.sub(r"^Missing data for required field\.$", "missing", text)
            yield f"{here or 'config'}: {text}"
