from nameko.rpc import RpcProxy

from common.schemas import PageSchema
from common.web import empty_response, http, json_response, load_body, load_query
from gateway.auth import Auth
from gateway.schemas import LoginBody, ProductBody, ProductPatchBody, RegisterBody

PRODUCT_ID = "<int:product_id>"


class GatewayService:
    name = "gateway"

    users = RpcProxy("users")
    products = RpcProxy("products")
    auth = Auth()

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
