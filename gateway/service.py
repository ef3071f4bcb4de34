import eventlet
from eventlet.greenpool import GreenPool

from common.errors import ServiceUnavailable, ShopError
from common.rpc import ServiceRpc
from common.schemas import PageSchema
from common.web import empty_response, http, json_response, load_body, load_query
from gateway.auth import Auth
from gateway.schemas import (
    LoginBody, OrderBody, ProductBody, ProductPatchBody, RegisterBody, StockQuantityBody)

DOMAIN_SERVICES = ("users", "products", "inventory", "orders")
READY_TIMEOUT_SECONDS = 1
PRODUCT_ID = "<int:product_id>"
ORDER_ID = "<int:order_id>"


class GatewayService:
    name = "gateway"

    users = ServiceRpc("users")
    products = ServiceRpc("products")
    inventory = ServiceRpc("inventory")
    orders = ServiceRpc("orders")
    auth = Auth()

    @http("GET", "/health")
    def health(self, request):
        """The gateway is alive: it answers HTTP."""
        return json_response(200, {"status": "ok"})

    @http("GET", "/health/ready")
    def ready(self, request):
        """Every domain service answers a ping, database included, within 1 s."""
        checks = dict(GreenPool().imap(self._check, DOMAIN_SERVICES))
        missing = [name for name, check in checks.items() if check["status"] != "ok"]
        if not missing:
            return json_response(200, {"status": "ok", "services": checks})
        return json_response(503, {
            "error": "not_ready", "message": f"Not ready: {', '.join(missing)}",
            "status": "unavailable", "services": checks})

    def _check(self, service_name):
        unanswered = ServiceUnavailable(f"no answer within {READY_TIMEOUT_SECONDS} s")
        try:
            with eventlet.Timeout(READY_TIMEOUT_SECONDS, unanswered):
                getattr(self, service_name).ping()
        except Exception as exc:  # whatever the failure, the answer is "not ready"
            message = exc.message if isinstance(exc, ShopError) else f"{type(exc).__name__}: {exc}"
            return service_name, {"status": "unavailable", "error": message}
        return service_name, {"status": "ok"}

    @http("POST", "/register")
    def register(self, request):
        body = load_body(request, RegisterBody())
        return json_response(201, self.users.register(**body))

    @http("POST", "/login")
    def login(self, request):
        body = load_body(request, LoginBody())
        return json_response(200, self.users.authenticate(**body))

    @http("GET", "/users/me")
    def me(self, request):
        claims = self.auth.user(request)
        return json_response(200, self.users.get_user(claims.user_id))

    @http("GET", "/products")
    def list_products(self, request):
        page = load_query(request, PageSchema())
        listing = self.products.list(**page)
        return json_response(200, {**listing, **page})

    @http("GET", f"/products/{PRODUCT_ID}")
    def get_product(self, request, product_id):
        return json_response(200, self.products.get(product_id))

    @http("POST", "/products")
    def create_product(self, request):
        self.auth.admin(request)
        schema = ProductBody()
        fields = schema.dump(load_body(request, schema))
        return json_response(201, self.products.create(**fields))

    @http("PATCH", f"/products/{PRODUCT_ID}")
    def update_product(self, request, product_id):
        self.auth.admin(request)
        schema = ProductPatchBody()
        changes = schema.dump(load_body(request, schema))
        return json_response(200, self.products.update(product_id, changes))

    @http("DELETE", f"/products/{PRODUCT_ID}")
    def delete_product(self, request, product_id):
        self.auth.admin(request)
        self.products.delete(product_id)
        return empty_response(204)

    @http("GET", f"/inventory/{PRODUCT_ID}")
    def get_stock(self, request, product_id):
        return json_response(200, self.inventory.get_stock(product_id))

    @http("POST", f"/inventory/{PRODUCT_ID}")
    def add_stock(self, request, product_id):
        self.auth.admin(request)
        body = load_body(request, StockQuantityBody())
        self.products.get(product_id)  # 404 for a product the catalogue does not have
        return json_response(200, self.inventory.add_stock(product_id, body["quantity"]))

    @http("DELETE", f"/inventory/{PRODUCT_ID}")
    def remove_stock(self, request, product_id):
        self.auth.admin(request)
        body = load_body(request, StockQuantityBody())
        return json_response(200, self.inventory.remove_stock(product_id, body["quantity"]))

    @http("POST", "/orders")
    def place_order(self, request):
        claims = self.auth.user(request)
        body = load_body(request, OrderBody())
        return json_response(202, self.orders.place_order(claims.user_id, body["items"]))

    @http("GET", "/orders")
    def list_orders(self, request):
        claims = self.auth.user(request)
        page = load_query(request, PageSchema())
        listing = self.orders.list_orders(claims.user_id, **page)
        return json_response(200, {**listing, **page})

    @http("GET", f"/orders/{ORDER_ID}")
    def get_order(self, request, order_id):
        claims = self.auth.user(request)
        # an admin sees any order; anyone else only their own, and 404 for the rest
        owner = None if claims.is_admin else claims.user_id
        return json_response(200, self.orders.get_order(order_id, owner))

    @http("POST", f"/orders/{ORDER_ID}/pay")
    def pay_order(self, request, order_id):
        claims = self.auth.user(request)
        return json_response(200, self.orders.pay_order(order_id, claims.user_id))

    @http("POST", f"/orders/{ORDER_ID}/cancel")
    def cancel_order(self, request, order_id):
        claims = self.auth.user(request)
        return json_response(200, self.orders.cancel_order(order_id, claims.user_id))
