import functools
import logging
import os

import eventlet
from eventlet.greenpool import GreenPool
from nameko.exceptions import IncorrectSignature
from swagger_ui_bundle import swagger_ui_path
from werkzeug.security import safe_join
from werkzeug.utils import send_file
from werkzeug.wrappers import Response

from common.build import UNKNOWN, build_info
from common.errors import NotFound, ServiceUnavailable, ShopError, Unauthorized
from common.messaging.rpc import ServiceRpc
from common.observability.metrics import CONTENT_TYPE_LATEST
from common.observability.telemetry import Telemetry
from common.schemas import CatalogueQuerySchema, schema_of
from common.web.json_http import (
    REPLAYED_HEADER, Draining, empty_response, http, json_response, load_body, load_idempotency_key,
    load_query)
from gateway.auth import Auth
from gateway.catalogue import CatalogueCache, catalogue_events, product_id_of
from gateway.openapi import SWAGGER_PAGE, build_spec, documented
from gateway.throttle import LoginThrottle
from gateway.schemas import (
    CategoriesOut, ErrorOut, HealthOut, LoginBody, OrderBody, OrderListQuery, OrderOut, OrderPage,
    ProductBody, ProductOut, ProductPage, ProductPatchBody, ReadyOut, RegisterBody,
    StockOut, StockQuantityBody, TokenOut, UserOut)

log = logging.getLogger(__name__)

# the services the API needs to answer, which /health/ready checks; not
# notifications: mail can wait while the API serves
DOMAIN_SERVICES = ("users", "products", "inventory", "orders")
STOREFRONT = os.path.join(os.path.dirname(__file__), "storefront")
# generated from the services' contracts by make contracts (tools.contracts)
ASYNCAPI_FILE = "asyncapi.json"
READY_TIMEOUT_SECONDS = 1
PRODUCT_ID = "<int:product_id>"
# GET /products with only these is the catalogue in id order, which the cache keeps
PAGE_ONLY = {"limit", "offset", "after"}
ORDER_ID = "<int:order_id>"


class GatewayService:
    name = "gateway"

    users = ServiceRpc("users")
    products = ServiceRpc("products")
    inventory = ServiceRpc("inventory")
    orders = ServiceRpc("orders")
    auth = Auth()
    login_attempts = LoginThrottle()
    catalogue = CatalogueCache()
    telemetry = Telemetry()
    draining = Draining()

    @http("GET", "/openapi.json")
    @documented("This document", "operations",
                answers={200: (None, "The OpenAPI 3 document")}, local=True)
    def openapi(self, request):
        return json_response(200, openapi_document())

    @http("GET", "/asyncapi.json")
    @documented("The AsyncAPI 3 document of the services' events and RPC methods",
                "operations", answers={200: (None, "The AsyncAPI 3 document")}, local=True)
    def asyncapi(self, request):
        return static_file(request, os.path.dirname(__file__), ASYNCAPI_FILE)

    @http("GET", "/docs")
    @documented("Swagger UI for this document", "operations", content_type="text/html",
                answers={200: (None, "An HTML page")}, local=True)
    def docs(self, request):
        return Response(SWAGGER_PAGE, mimetype="text/html")

    @http("GET", "/docs/<path:filename>")
    @documented("Swagger UI's static files", "operations",
                answers={200: (None, "A file")}, errors=(404,), local=True)
    def docs_file(self, request, filename):
        return static_file(request, str(swagger_ui_path), filename)

    @http("GET", "/")
    @documented("The storefront: shop in a browser", "storefront", content_type="text/html",
                answers={200: (None, "An HTML page")}, local=True)
    def storefront(self, request):
        return with_page_security(static_file(request, STOREFRONT, "index.html"))

    @http("GET", "/storefront/<path:filename>")
    @documented("The storefront's scripts and styles", "storefront",
                answers={200: (None, "A file")}, errors=(404,), local=True)
    def storefront_file(self, request, filename):
        return with_page_security(static_file(request, STOREFRONT, filename))

    @http("GET", "/health")
    @documented("The gateway is alive; which build it and the services it reaches run",
                "operations", answers={200: (HealthOut, "Alive")}, local=True)
    def health(self, request):
        """The gateway is alive: it answers HTTP, always 200. With its version
        and revision, and those of each domain service that answers within
        1 s (a service that does not is listed as unavailable)."""
        return json_response(200, {"status": "ok", **build_info(),
                                   "services": self._check_services()})

    @http("GET", "/metrics")
    @documented("The gateway's Prometheus metrics", "operations", content_type="text/plain",
                answers={200: (None, "Prometheus text format")}, local=True)
    def metrics(self, request):
        return Response(self.telemetry.exposition(), content_type=CONTENT_TYPE_LATEST)

    @http("GET", "/health/ready")
    @documented("Every domain service and its database answer within 1 s", "operations",
                answers={200: (ReadyOut, "Ready"),
                         503: (ReadyOut, "Not ready: the services that did not answer, "
                                         "or the gateway is stopping")},
                local=True)
    def ready(self, request):
        """Every domain service answers a ping, database included, within 1 s,
        and the gateway is not stopping."""
        if self.draining():
            return json_response(503, {
                "error": "stopping", "message": "Not ready: the gateway is stopping",
                "status": "stopping", "services": {}})
        checks = self._check_services()
        missing = [name for name, check in checks.items() if check["status"] != "ok"]
        if not missing:
            return json_response(200, {"status": "ok", "services": checks})
        return json_response(503, {
            "error": "not_ready", "message": f"Not ready: {', '.join(missing)}",
            "status": "unavailable", "services": checks})

    def _check_services(self):
        return dict(GreenPool().imap(self._check, DOMAIN_SERVICES))

    def _check(self, service_name):
        unanswered = ServiceUnavailable(f"no answer within {READY_TIMEOUT_SECONDS} s")
        try:
            with eventlet.Timeout(READY_TIMEOUT_SECONDS, unanswered):
                answer = getattr(self, service_name).ping()
        except Exception as exc:  # whatever the failure, the answer is "not ready"
            message = exc.message if isinstance(exc, ShopError) else f"{type(exc).__name__}: {exc}"
            return service_name, {"status": "unavailable", "error": message}
        # a service of a release before 0.2.0 does not say which it runs
        return service_name, {"status": "ok", **{
            key: answer.get(key, UNKNOWN) for key in ("version", "revision")}}

    @http("POST", "/register")
    @documented("Register a customer", "accounts", body=RegisterBody,
                answers={201: (UserOut, "Registered")}, errors=(409,))
    def register(self, request):
        body = load_body(request, RegisterBody)
        return json_response(201, self.users.register(**body))

    @http("POST", "/login")
    @documented("Log in: an access token", "accounts", body=LoginBody,
                answers={200: (TokenOut, "A bearer token")}, errors=(401, 429))
    def login(self, request):
        body = load_body(request, LoginBody)
        username, client = body["username"], request.remote_addr
        self.login_attempts.check(username, client)
        try:
            token = self.users.authenticate(**body)
        except Unauthorized:
            self.login_attempts.failed(username, client)
            raise
        self.login_attempts.succeeded(username, client)
        return json_response(200, token)

    @http("GET", "/users/me")
    @documented("The caller's account", "accounts", auth="user",
                answers={200: (UserOut, "The account")})
    def me(self, request):
        claims = self.auth.user(request)
        return json_response(200, self.users.get_user(claims.user_id))

    @http("GET", "/products")
    @documented("A page of the catalogue, or of a search: words, a category, a price range, "
                "an order", "catalogue", query=CatalogueQuerySchema,
                answers={200: (ProductPage, "The page")})
    def list_products(self, request):
        query = load_query(request, CatalogueQuerySchema)
        if query.keys() - PAGE_ONLY:
            asked = schema_of(CatalogueQuerySchema).dump(query)  # prices as strings
            return json_response(200, {**self.products.search(**asked), **asked})
        # a page's query is integers only, as loaded
        return json_response(200, {**self.catalogue.page(self._fetch_page, **query), **query})

    @http("GET", "/categories")
    @documented("The categories of the catalogue, by name, with how many products each holds",
                "catalogue", answers={200: (CategoriesOut, "The categories")})
    def list_categories(self, request):
        return json_response(200, self.catalogue.categories(self._fetch_categories))

    # The products service's methods, looked up on a miss only: looking one
    # up builds nameko's method proxy and its publisher, about 20 us, a
    # twentieth of a read answered from memory.
    def _fetch_page(self, **query):
        return self.products.list(**query)

    def _fetch_product(self, product_id):
        return self.products.get(product_id)

    def _fetch_categories(self):
        return self.products.categories()

    @http("GET", f"/products/{PRODUCT_ID}")
    @documented("One product", "catalogue", answers={200: (ProductOut, "The product")})
    def get_product(self, request, product_id):
        return json_response(200, self.catalogue.product(product_id, self._fetch_product))

    @http("POST", "/products")
    @documented("Add a product", "catalogue", auth="admin", body=ProductBody,
                answers={201: (ProductOut, "Created")})
    def create_product(self, request):
        self.auth.admin(request)
        fields = schema_of(ProductBody).dump(load_body(request, ProductBody))
        if fields.get("category", "") is None:
            del fields["category"]  # the default: a products service on 0.2.0 takes no category
        created = self.products.create(**fields)
        self.catalogue.forget(created["id"])  # read-your-writes here, before the event
        return json_response(201, created)

    @http("PATCH", f"/products/{PRODUCT_ID}")
    @documented("Change some fields of a product", "catalogue", auth="admin",
                body=ProductPatchBody, answers={200: (ProductOut, "Changed")})
    def update_product(self, request, product_id):
        self.auth.admin(request)
        changes = schema_of(ProductPatchBody).dump(load_body(request, ProductPatchBody))
        updated = self.products.update(product_id, changes)
        self.catalogue.forget(product_id)
        return json_response(200, updated)

    @http("DELETE", f"/products/{PRODUCT_ID}")
    @documented("Take a product out of the catalogue (soft delete)", "catalogue", auth="admin",
                answers={204: (None, "Deleted")})
    def delete_product(self, request, product_id):
        self.auth.admin(request)
        self.products.delete(product_id)
        self.catalogue.forget(product_id)
        return empty_response(204)

    @http("GET", f"/inventory/{PRODUCT_ID}")
    @documented("The stock of a product", "inventory", answers={200: (StockOut, "The stock")})
    def get_stock(self, request, product_id):
        return json_response(200, self.inventory.get_stock(product_id))

    @http("POST", f"/inventory/{PRODUCT_ID}")
    @documented("Restock a product", "inventory", auth="admin", body=StockQuantityBody,
                answers={200: (StockOut, "The new stock")})
    def add_stock(self, request, product_id):
        self.auth.admin(request)
        body = load_body(request, StockQuantityBody)
        self.catalogue.product(product_id, self._fetch_product)  # 404 for an unknown product
        return json_response(200, self.inventory.add_stock(product_id, body["quantity"]))

    @http("DELETE", f"/inventory/{PRODUCT_ID}")
    @documented("Write stock off", "inventory", auth="admin", body=StockQuantityBody,
                answers={200: (StockOut, "The new stock")}, errors=(409,))
    def remove_stock(self, request, product_id):
        self.auth.admin(request)
        body = load_body(request, StockQuantityBody)
        return json_response(200, self.inventory.remove_stock(product_id, body["quantity"]))

    @http("POST", "/orders")
    @documented("Place an order; stock is reserved next", "orders", auth="user", body=OrderBody,
                answers={202: (OrderOut, "Accepted, pending")}, idempotent=True)
    def place_order(self, request):
        claims = self.auth.user(request)
        key = load_idempotency_key(request)
        body = load_body(request, OrderBody)
        return keyed_answer(202, key, self.orders.place_order, claims.user_id, body["items"])

    @http("GET", "/orders")
    @documented("A page of the caller's orders (every order, for an admin asking for "
                "scope=all), newest first", "orders", auth="user", query=OrderListQuery,
                answers={200: (OrderPage, "The page")}, errors=(403,))
    def list_orders(self, request):
        claims = self.auth.user(request)
        query = load_query(request, OrderListQuery)
        page = {"limit": query["limit"], "offset": query["offset"]}
        if query["scope"] == "all":
            self.auth.admin(request)
            listing = self.orders.list_all_orders(**page)
        else:
            listing = self.orders.list_orders(claims.user_id, **page)
        return json_response(200, {**listing, **page})

    @http("GET", f"/orders/{ORDER_ID}")
    @documented("One of the caller's orders (any order, for an admin)", "orders", auth="user",
                answers={200: (OrderOut, "The order")})
    def get_order(self, request, order_id):
        claims = self.auth.user(request)
        # an admin sees any order; anyone else only their own, and 404 for the rest
        owner = None if claims.is_admin else claims.user_id
        return json_response(200, self.orders.get_order(order_id, owner))

    @http("POST", f"/orders/{ORDER_ID}/pay")
    @documented("Pay an order awaiting payment", "orders", auth="user",
                answers={200: (OrderOut, "Paid"), 402: (ErrorOut, "The payment was declined")},
                errors=(409,), idempotent=True)
    def pay_order(self, request, order_id):
        claims = self.auth.user(request)
        key = load_idempotency_key(request)
        return keyed_answer(200, key, self.orders.pay_order, order_id, claims.user_id)

    @http("POST", f"/orders/{ORDER_ID}/cancel")
    @documented("Cancel a pending or unpaid order", "orders", auth="user",
                answers={200: (OrderOut, "Cancelled")}, errors=(409,), idempotent=True)
    def cancel_order(self, request, order_id):
        claims = self.auth.user(request)
        key = load_idempotency_key(request)
        return keyed_answer(200, key, self.orders.cancel_order, order_id, claims.user_id)


    @catalogue_events
    def on_product_event(self, envelope):
        self.catalogue.forget(product_id_of(envelope))


def keyed_answer(status, idempotency_key, call, *args):
    """``call(*args)``'s answer as ``status``. With the request's
    Idempotency-Key, the orders service carries the request out at most once
    and says whether this answer is the first one's, replayed."""
    if idempotency_key is None:
        return json_response(status, call(*args))
    try:
        answer = call(*args, idempotency_key=idempotency_key)
    except IncorrectSignature:
        # an orders service of a release before 0.2.0 (during a rollback) takes
        # no key. nameko checks a call's signature before it runs anything, so
        # the call is made again without the key, unprotected against a retry,
        # as that release would have made it
        log.warning("the orders service takes no idempotency key; the request is carried "
                    "out without one")
        return json_response(status, call(*args))
    headers = {REPLAYED_HEADER: "true"} if answer["replayed"] else None
    return json_response(status, answer["result"], headers)


def static_file(request, directory, filename):
    """A file of ``directory``, never one outside it."""
    path = safe_join(directory, filename)
    if path is None or not os.path.isfile(path):
        raise NotFound(f"No file {filename}", "file_not_found")
    response = send_file(path, request.environ)
    response.headers["Cache-Control"] = "no-cache"  # revalidated: a new version shows at once
    return response


# The storefront's files come from the gateway alone, and its scripts are
# the only ones that run: text from the API is never markup.
STOREFRONT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def with_page_security(response):
    response.headers.update(STOREFRONT_HEADERS)
    return response


@functools.cache
def openapi_document():
    return build_spec(GatewayService)
