"""Nameko's ``@http`` entrypoint, speaking JSON.

Stock nameko answers errors as ``text/plain`` ("Error: Type: msg"), unknown
routes with werkzeug's HTML 404, and reads bodies of any size. Here every
answer is JSON, every error has the shape
``{"error": code, "message": sentence[, "details": {field: [messages]}]}``
with the right status, and bodies over 1 MiB are refused with 413.

Each request has an id: the client's ``X-Request-ID`` if it is a plausible
one, else a new one. It is answered in the same header and becomes the
worker's context data, so it travels with every RPC call and event that
follows (and is in every log line they write); a W3C ``traceparent`` header
makes the request part of the client's trace.
"""
import json
import logging
import math
import re
import uuid
from decimal import Decimal

import eventlet
from eventlet.event import Event
from nameko.exceptions import BadRequest
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import ClosingIterator

from common.config import ShutdownSettings
from common.errors import InvalidInput, ShopError
from common.schemas import IdempotencyKeySchema, load

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
JSON_TYPE = "application/json"
# how long a stopping server waits for the requests it has; each RPC call in
# them gives up after RPC.TIMEOUT_SECONDS
FINISH_SECONDS = 30


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


def load_body(request, schema_class):
    """The request's JSON object, loaded through a ``schema_class``.

    JSON numbers stay ``int`` and ``float``: the money fields refuse both.
    """
    raw = request.get_data(cache=False)  # raises 413 past max_content_length
    if not raw.strip():
        raise InvalidInput("The request body must be a JSON object", "malformed_body")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        raise InvalidInput("The request body is not valid JSON", "malformed_body") from None
    except RecursionError:  # the C decoder's limit, about 1,000 levels
        raise InvalidInput("The request body is nested too deeply", "malformed_body") from None
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object", "malformed_body")
    return load(schema_class, data, "The request body is invalid")


def load_query(request, schema_class):
    return load(schema_class, request.args.to_dict(), "The query string is invalid")


def load_idempotency_key(request):
    """The request's ``Idempotency-Key`` header, checked; None without one."""
    if IDEMPOTENCY_KEY_HEADER not in request.headers:
        return None
    header = {IDEMPOTENCY_KEY_HEADER: request.headers[IDEMPOTENCY_KEY_HEADER]}
    return load(IdempotencyKeySchema, header, "The Idempotency-Key header is invalid")["key"]


REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TRACE_HEADERS = ("traceparent", "tracestate")
# a client's key for retrying a request safely, and the mark of an answer replayed for it
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def request_id_of(request):
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex


CORS_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE",
    "Access-Control-Allow-Headers":
        f"Authorization, Content-Type, {REQUEST_ID_HEADER}, {IDEMPOTENCY_KEY_HEADER}",
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
        self.server.request_started()
        try:
            answer = self.answer(environ, start_response)
        except BaseException:
            self.server.request_finished()
            raise
        # finished once the server has written the answer and closes it
        return ClosingIterator(answer, self.server.request_finished)

    def answer(self, environ, start_response):
        request = JsonRequest(environ, shallow=True)
        request_id = environ["shop.request_id"] = request_id_of(request)
        origin = request.headers.get("Origin")
        cors = origin in self.cors_origins
        if cors and request.method == "OPTIONS" and \
                "Access-Control-Request-Method" in request.headers:
            response = Response(status=204, headers=CORS_PREFLIGHT_HEADERS)
        else:
            response = self.route(request, environ)
        response.headers[REQUEST_ID_HEADER] = request_id
        if cors:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = \
                f"Retry-After, {REQUEST_ID_HEADER}, {REPLAYED_HEADER}"
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
    """nameko's WebServer, with the JSON app, and a stop that loses no request.

    Stopping, it first drains (:meth:`drain`, which the shop's container calls
    before it stops anything): it answers as usual, but ``/health/ready``
    says not ready, for ``SHUTDOWN.DRAIN_SECONDS``, so that a load balancer
    stops sending it requests. Then, once its routes have stopped, it closes
    its socket and waits for the requests it has until their answers are
    written, while the RPC proxies they use still run. (nameko's WebServer
    accepts connections until the very end, after the dependencies stopped.)
    """

    def setup(self):
        super().setup()
        settings = ShutdownSettings().load(self.container.config.get("SHUTDOWN") or {})
        self.drain_seconds = settings["DRAIN_SECONDS"]
        self.draining = False
        self.open_requests = 0
        self.no_open_requests = Event()
        self.no_open_requests.send()

    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def request_started(self):
        if self.open_requests == 0:
            self.no_open_requests.reset()
        self.open_requests += 1

    def request_finished(self):
        self.open_requests -= 1
        if self.open_requests == 0:
            self.no_open_requests.send()

    def drain(self):
        self.draining = True
        # every answer closes its connection: the client's next request goes
        # through the load balancer again, to another instance
        self._serv.keepalive = False
        if self.drain_seconds:
            log.info("stopping: not ready for %s s, then finishing open requests",
                     self.drain_seconds)
            eventlet.sleep(self.drain_seconds)

    def unregister_provider(self, provider):
        super().unregister_provider(provider)
        if not self._providers and self._gt is not None:  # the last route stopped
            self._is_accepting = False
            self._gt.kill()
            self._sock.close()
            if not self.no_open_requests.ready():
                log.info("finishing %d open request(s)", self.open_requests)
            with eventlet.Timeout(FINISH_SECONDS, False):
                self.no_open_requests.wait()

    def context_data_from_headers(self, request):
        context = {"request_id": request.environ["shop.request_id"]}
        context.update({name: request.headers[name]
                        for name in TRACE_HEADERS if name in request.headers})
        return context


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
        if getattr(exc, "retry_after", None) is not None:  # 429, or a request in progress
            return {"Retry-After": str(math.ceil(exc.retry_after))}
        if exc.status == 503:
            # by then an open circuit breaker lets a trial call through
            retry_after = self.container.config["RPC"]["BREAKER_RESET_SECONDS"]
            return {"Retry-After": str(math.ceil(retry_after))}
        return None


http = JsonHttpRequestHandler.decorator


class Draining(DependencyProvider):
    """``self.draining()``: True once the service is stopping (see
    :class:`JsonWebServer`), when its readiness check should say not ready."""

    def start(self):
        [self.server] = [extension for extension in self.container.subextensions
                         if isinstance(extension, JsonWebServer)]

    def get_dependency(self, worker_ctx):
        return self.is_draining

    def is_draining(self):
        return self.server.draining
