"""The error vocabulary the services share over RPC.

Nameko rebuilds a remote exception at the caller only when its class is
registered with ``deserialize_to_instance``; every class here is, so an error
raised in the products service arrives at the gateway as the same class and
maps to its HTTP status instead of a generic ``RemoteError``.
"""
from nameko.exceptions import deserialize_to_instance


class ShopError(Exception):
    """An error a client can act on: a status, a machine-readable code,
    a human sentence and, for invalid input, the messages per field."""

    status = 500
    default_code = "internal_error"

    def __init__(self, message, code=None, details=None):
        # args must rebuild the instance at the RPC caller; None would
        # travel as the string "None", so details is always a dict
        super().__init__(message, code or self.default_code, details or {})

    @property
    def message(self):
        return self.args[0]

    @property
    def code(self):
        return self.args[1]

    @property
    def details(self):
        return self.args[2]

    def __str__(self):
        return self.message

    def to_dict(self):
        body = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


@deserialize_to_instance
class InvalidInput(ShopError):
    status = 400
    default_code = "invalid_input"


@deserialize_to_instance
class Unauthorized(ShopError):
    status = 401
    default_code = "unauthorized"


@deserialize_to_instance
class Forbidden(ShopError):
    status = 403
    default_code = "forbidden"


@deserialize_to_instance
class NotFound(ShopError):
    status = 404
    default_code = "not_found"

    @classmethod
    def entity(cls, entity, entity_id):
        """``NotFound.entity("product", 7)``: "Product 7 does not exist", product_not_found."""
        return cls(f"{entity.capitalize()} {entity_id} does not exist", f"{entity}_not_found")


@deserialize_to_instance
class Conflict(ShopError):
    status = 409
    default_code = "conflict"


@deserialize_to_instance
class RequestInProgress(Conflict):
    """The first request with this idempotency key is still being processed;
    the client may retry after ``retry_after`` seconds (409 with Retry-After)."""

    default_code = "request_in_progress"
    retry_after = 1


@deserialize_to_instance
class IdempotencyKeyReused(ShopError):
    """The idempotency key was sent before with a different request (422)."""

    status = 422
    default_code = "idempotency_key_reused"


@deserialize_to_instance
class PaymentRequired(ShopError):
    """The payment provider declined; the client may try again."""

    status = 402
    default_code = "payment_declined"


@deserialize_to_instance
class ServiceUnavailable(ShopError):
    """A service the request needs did not answer in time, is not running,
    or is failing (its circuit breaker is open); the client may retry."""

    status = 503
    default_code = "service_unavailable"


class TooManyRequests(ShopError):
    """Refused for a while (429); ``retry_after`` seconds says how long.
    Raised in the gateway only, so it never crosses RPC."""

    status = 429
    default_code = "too_many_requests"

    def __init__(self, message, retry_after, code=None):
        super().__init__(message, code)
        self.retry_after = retry_after
