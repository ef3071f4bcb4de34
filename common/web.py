"""Nameko's ``@http`` entrypoint, speaking JSON.

Stock nameko answers errors as ``text/plain`` ("Error: Type: msg"), unknown
routes with werkzeug's HTML 404, and reads bodies of any size. Here every
answer is JSON, every error has the shape
``{"error": code, "message": sentence[, "details": {field: [messages]}]}``
with the right status, and bodies over 1 MiB are refused with 413.
"""
import json
import logging
import math
from decimal import Decimal

from nameko.exceptions import BadRequest
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from common.errors import InvalidInput, ShopError
from common.schemas import load

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
JSON_TYPE = "application/json"


class JsonEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return format(o, "f")
        return super().default(o)


def json_response(status, payload, headers=None):
    # the final newline keeps a terminal prompt off the end of curl's output
    return Response(
        json.dumps(payload, cls=JsonEncoder) + "\n", status=status, headers=headers,
        mimetype=JSON_TYPE)


def empty_response(status=204):
    return Response(status=status)


def error_response(status, code, message, details=None, headers=None):
    body = {"error": code, "message": message}
    if details:
        body["details"] = details
    return json_response(status, body, headers)


def http_error_response(exc):
    """werkzeug's routing and body errors (404, 405, 413...) as JSON."""
    code = exc.name.lower().replace(" ", "_")
    headers = [h for h in exc.get_headers() if h[0].lower() != "content-type"]
    return error_response(exc.code, code, exc.description, headers=headers)


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def load_body(request, schema):
    """The request's JSON object, loaded through ``schema``.

    Numbers with a fraction become Decimal, never float.
    """
    raw = request.get_data(cache=False)  # raises 413 past max_content_length
    if not raw.strip():
        raise InvalidInput("The request body must be a JSON object", "malformed_body")
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError:
        raise InvalidInput("The request body is not valid JSON", "malformed_body") from None
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object", "malformed_body")
    return load(schema, data, "The request body is invalid")


def load_query(request, schema):
    return load(schema, request.args.to_dict(), "The query string is invalid")


CORS_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


class JsonRequest(Request):
    max_content_length = MAX_BODY_BYTES


class JsonWsgiApp:
    """nameko's WsgiApp with JSON answers for requests no route takes, and
    CORS for the origins in ``CORS.ALLOW_ORIGINS`` (none by default)."""

    def __init__(self, server):
        self.server = server
        self.url_map = server.make_url_map()
        origins = (server.container.config.get("CORS") or {}).get("ALLOW_ORIGINS") or ""
        self.cors_origins = {origin.strip() for origin in origins.split(",") if origin.strip()}

    def __call__(self, environ, start_response):
        request = JsonRequest(environ, shallow=True)
        origin = request.headers.get("Origin")
        cors = origin in self.cors_origins
        if cors and request.method == "OPTIONS" and \
                "Access-Control-Request-Method" in request.headers:
            response = Response(status=204, headers=CORS_PREFLIGHT_HEADERS)
        else:
            response = self.route(request, environ)
        if cors:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
            response.headers.add("Vary", "Origin")
        return response(environ, start_response)

    def route(self, request, environ):
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            return provider.handle_request(request)
        except HTTPException as exc:
            return http_error_response(exc)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class JsonHttpRequestHandler(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(self, method, url, **kwargs):
        kwargs.setdefault("expected_exceptions", (ShopError, HTTPException))
        super().__init__(method, url, **kwargs)

    def response_from_exception(self, exc):
        if isinstance(exc, ShopError):
            return error_response(
                exc.status, exc.code, exc.message, exc.details, self._error_headers(exc))
        if isinstance(exc, HTTPException):
            return http_error_response(exc)
        if isinstance(exc, BadRequest):  # the handler's signature did not match
            return error_response(400, "bad_request", str(exc))
        log.error("unhandled error answering %s", self.url, exc_info=exc)
        return error_response(500, "internal_error", "The server could not answer this request")

    def _error_headers(self, exc):
        if exc.status == 401:
            return {"WWW-Authenticate": "Bearer"}
        if exc.status == 429:
            return {"Retry-After": str(exc.retry_after)}
        if exc.status == 503:
            # by then an open circuit breaker lets a trial call through
            retry_after = self.container.config["RPC"]["BREAKER_RESET_SECONDS"]
            return {"Retry-After": str(math.ceil(retry_after))}
        return None


http = JsonHttpRequestHandler.decorator
