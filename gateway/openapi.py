"""The gateway's OpenAPI 3 document, built from its own routes and marshmallow
schemas (apispec), and the Swagger UI page that shows it.

Every route carries ``@documented(...)``: what it takes and answers, and the
tag it is listed under. The document lists exactly the routes the gateway
serves, since it is built from their entrypoints; a route without
``@documented``, or with a tag not in ``TAGS``, stops the build.
"""
import re
from dataclasses import dataclass, field

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from nameko.web.handlers import HttpRequestHandler

from common.contracts import teach_shop_fields
from common.schemas import IDEMPOTENCY_KEY_PATTERN
from gateway.schemas import ErrorOut

TITLE = "shop"
VERSION = "1.0.0"
# the groups /docs shows, in this order
TAGS = {
    "accounts": "Register, log in, and see whose token it is",
    "catalogue": "The products for sale; an admin adds, changes and removes them",
    "inventory": "Stock per product; an admin restocks and writes off",
    "orders": "Place, follow, pay and cancel orders; stock is reserved as they are placed",
    "operations": "Health checks, metrics and this documentation, for operators and tools",
    "storefront": "The shop's web page, for people: HTML, scripts and styles over this API",
}
ERROR_DESCRIPTIONS = {
    400: "Invalid input, or a body that is not a JSON object",
    401: "No token, or an invalid or expired one",
    403: "The token's role may not do this",
    404: "Not found",
    409: "Conflict with the current state, or a request with the same Idempotency-Key still "
         "being processed (request_in_progress; see Retry-After)",
    413: "Body over 1 MiB",
    422: "The Idempotency-Key was sent before with a different request",
    429: "Too many failed attempts; see Retry-After",
    503: "A service did not answer in time or is failing; see Retry-After",
}
# eventlet's HTTP server refuses a request line (method, path and query) of
# 8 KiB or more itself, before the API sees it, with an empty body
REQUEST_LINE_TOO_LONG = {"description": "Request line (path and query) of 8 KiB or more, "
                                        "refused by the HTTP server with an empty body"}
IDEMPOTENCY_KEY = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "Any unique value, such as a UUID, to retry this request safely: a retry "
                   "with the same key and body is answered as the first request was (marked "
                   "Idempotent-Replayed), and changes nothing more. Keys belong to their user "
                   "and are kept for IDEMPOTENCY.KEY_TTL_SECONDS, 24 hours by default.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": IDEMPOTENCY_KEY_PATTERN}}
REPLAYED = {"Idempotent-Replayed": {
    "description": "true when this is the answer to an earlier request with the same "
                   "Idempotency-Key, replayed", "schema": {"type": "string", "enum": ["true"]}}}


@dataclass
class Operation:
    summary: str
    tag: str
    auth: str | None = None  # None, "user" or "admin"
    body: type | None = None
    query: type | None = None
    answers: dict = field(default_factory=dict)  # status: (schema or None, description)
    errors: tuple = ()
    content_type: str = "application/json"
    local: bool = False  # answers without calling a service (so never 503)
    idempotent: bool = False  # takes an Idempotency-Key


def documented(summary, tag, auth=None, body=None, query=None, answers=None, errors=(),
               content_type="application/json", local=False, idempotent=False):
    """What a route takes and answers, for the OpenAPI document, listed under
    ``tag`` (one of ``TAGS``). ``errors`` lists the error statuses beyond
    those its inputs and auth imply."""

    def decorate(method):
        method.openapi = Operation(summary, tag, auth, body, query, answers or {}, errors,
                                   content_type, local, idempotent)
        return method

    return decorate


def served_routes(service_cls):
    """``[(method, werkzeug url, function)]`` of the service's HTTP entrypoints."""
    routes = []
    for function in vars(service_cls).values():
        for entrypoint in getattr(function, "nameko_entrypoints", ()):
            if isinstance(entrypoint, HttpRequestHandler):
                routes.append((entrypoint.method, entrypoint.url, function))
    return routes


def openapi_path(url):
    """``/products/<int:product_id>`` -> ``/products/{product_id}``."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", url)


def build_spec(service_cls):
    marshmallow_plugin = MarshmallowPlugin()
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.0.3",
                   plugins=[marshmallow_plugin],
                   info={"description": "The shop's HTTP API. Money is a decimal string."})
    teach_shop_fields(marshmallow_plugin)
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=ErrorOut)
    for name, description in TAGS.items():
        spec.tag({"name": name, "description": description})
    paths = {}
    for method, url, function in served_routes(service_cls):
        operation = getattr(function, "openapi", None)
        if operation is None:
            raise LookupError(f"{method} {url} ({function.__name__}) has no @documented")
        if operation.tag not in TAGS:
            raise LookupError(f"{method} {url} ({function.__name__}): no tag {operation.tag!r}")
        paths.setdefault(openapi_path(url), {})[method.lower()] = _operation(
            function.__name__, url, operation)
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(name, url, operation):
    parameters = [{"in": "path", "name": parameter, "required": True,
                   "schema": {"type": "integer", "minimum": 1} if converter == "int"
                   else {"type": "string"}}
                  for converter, parameter in re.findall(r"<(?:(\w+):)?(\w+)>", url)]
    statuses = set(operation.errors)
    if operation.query is not None:
        parameters.append({"in": "query", "schema": operation.query})
        statuses.add(400)
    if "<" in url:
        statuses.add(404)
    if operation.auth:
        statuses.add(401)
    if operation.auth == "admin":
        statuses.add(403)
    if not operation.local:
        statuses.add(503)
    if operation.idempotent:
        parameters.append(IDEMPOTENCY_KEY)
        statuses.update((400, 409, 422))
    responses = {}
    for status, (schema, description) in operation.answers.items():
        responses[str(status)] = {"description": description}
        if schema is not None:
            responses[str(status)]["content"] = {operation.content_type: {"schema": schema}}
        if operation.idempotent and status < 300:
            responses[str(status)]["headers"] = REPLAYED
    result = {"operationId": name, "summary": operation.summary, "tags": [operation.tag],
              "responses": responses}
    if operation.body is not None:
        result["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": operation.body}}}
        statuses.update((400, 413))
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": "Error"}}}
    responses["414"] = REQUEST_LINE_TOO_LONG
    if parameters:
        result["parameters"] = parameters
    if operation.auth:
        result["security"] = [{"bearer": []}]
    return result


SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>shop API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""
