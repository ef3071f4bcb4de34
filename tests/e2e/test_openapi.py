"""The API's contract: /openapi.json names exactly the routes the gateway
serves, and /docs shows it with Swagger UI served from the gateway itself."""
import pytest
from nameko.testing.utils import get_container
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from nameko.web.handlers import HttpRequestHandler

from gateway.openapi import openapi_path
from gateway.service import GatewayService
from tools.contracts import current_document

pytestmark = pytest.mark.e2e


def served(runner):
    """(method, OpenAPI path) of every HTTP entrypoint the running gateway has."""
    container = get_container(runner, GatewayService)
    return {(e.method.lower(), openapi_path(e.url))
            for e in container.entrypoints if isinstance(e, HttpRequestHandler)}


def test_the_document_names_exactly_the_routes_the_gateway_serves(api, runner):
    answer = api.call("GET", "/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    documented = {(method, path) for path, operations in document["paths"].items()
                  for method in operations}
    assert documented == served(runner)


def test_operations_are_grouped_under_the_tags_a_reader_expects(api):
    document = api.call("GET", "/openapi.json").json()
    assert [tag["name"] for tag in document["tags"]] == [
        "accounts", "catalogue", "inventory", "orders", "operations", "storefront"]
    assert all(tag["description"] for tag in document["tags"])
    tagged = {(method.upper(), path): operation["tags"]
              for path, operations in document["paths"].items()
              for method, operation in operations.items()}
    assert all(len(tags) == 1 for tags in tagged.values()), tagged
    for route in (("POST", "/login"), ("GET", "/users/me")):
        assert tagged[route] == ["accounts"]
    assert tagged[("PATCH", "/products/{product_id}")] == ["catalogue"]
    assert tagged[("POST", "/inventory/{product_id}")] == ["inventory"]
    assert tagged[("POST", "/orders/{order_id}/pay")] == ["orders"]
    for route in (("GET", "/metrics"), ("GET", "/docs/{filename}"), ("GET", "/health/ready"),
                  ("GET", "/openapi.json")):
        assert tagged[route] == ["operations"]
    for route in (("GET", "/"), ("GET", "/storefront/{filename}")):
        assert tagged[route] == ["storefront"]


def test_every_operation_documents_its_errors_and_security(api):
    document = api.call("GET", "/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "requestBody" in operation:
                assert responses["400"]["content"]["application/json"]["schema"] == error
                assert "413" in responses
            if operation.get("security"):
                assert "401" in responses, (method, path)
            # the HTTP server's own refusal: no JSON body
            assert "414" in responses and "content" not in responses["414"], (method, path)
    pay = document["paths"]["/orders/{order_id}/pay"]["post"]
    assert {"200", "401", "402", "404", "409", "503"} <= set(pay["responses"])
    create = document["paths"]["/products"]["post"]
    assert create["security"] == [{"bearer": []}] and "403" in create["responses"]
    assert "security" not in document["paths"]["/products"]["get"]
    price = document["components"]["schemas"]["ProductOut"]["properties"]["price"]
    assert price["type"] == "string"


def test_swagger_ui_is_served_without_a_cdn(api):
    page = api.session.get(api.base_url + "/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'src="/docs/swagger-ui-bundle.js"' in page.text and "/openapi.json" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")
    script = api.session.get(api.base_url + "/docs/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content
    assert api.call("GET", "/docs/../../config.yaml").status_code == 404
    assert api.call("GET", "/docs/no-such-file.js").status_code == 404


def test_the_document_is_valid_openapi_3(api):
    validate(api.call("GET", "/openapi.json").json())


def test_the_gateway_serves_the_asyncapi_document_of_the_running_contracts(api):
    """Beside /openapi.json, the AsyncAPI document of the services' events and
    RPC methods (tests/unit/test_contracts.py validates it)."""
    answer = api.call("GET", "/asyncapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == current_document()


class Contract:
    """Checks each answer against the document: its status is documented for
    the operation, and its JSON body matches the documented schema."""

    def __init__(self, api):
        self.api = api
        self.document = api.call("GET", "/openapi.json").json()
        self.checked = set()

    def call(self, method, path, template, **kwargs):
        answer = self.api.call(method, path, **kwargs)
        operation = self.document["paths"][template][method.lower()]
        assert str(answer.status_code) in operation["responses"], (method, template, answer.text)
        documented = operation["responses"][str(answer.status_code)]
        if "content" in documented:
            schema = self.resolve(documented["content"]["application/json"]["schema"])
            OAS30Validator(schema).validate(answer.json())
        self.checked.add((method.lower(), template, answer.status_code))
        return answer

    def resolve(self, node):
        if isinstance(node, dict):
            if "$ref" in node:
                return self.resolve(self.document["components"]["schemas"][node["$ref"].split("/")[-1]])
            return {key: self.resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        return node


def test_answers_match_the_document(api):
    contract = Contract(api)
    admin = api.admin_token()
    alice = {"username": "alice", "email": "alice@example.com", "password": "wonderland"}
    contract.call("POST", "/register", "/register", json=alice)
    contract.call("POST", "/register", "/register", json=alice)  # 409
    contract.call("POST", "/register", "/register", json={"username": "x"})  # 400
    token = contract.call("POST", "/login", "/login", json={
        "username": "alice", "password": "wonderland"}).json()["access_token"]
    contract.call("POST", "/login", "/login", json={"username": "alice", "password": "nope"})
    contract.call("GET", "/users/me", "/users/me", token=token)
    contract.call("GET", "/users/me", "/users/me")  # 401

    product = contract.call("POST", "/products", "/products", token=admin,
                            json={"name": "Cup", "price": "2.50"}).json()
    item = "/products/{product_id}"
    contract.call("POST", "/products", "/products", token=token, json={"name": "Cup", "price": "1"})
    contract.call("GET", "/products", "/products", params={"limit": 5})
    contract.call("GET", "/products", "/products", params={"limit": 500})  # 400
    contract.call("GET", f"/products/{product['id']}", item)
    contract.call("GET", "/products/999", item)  # 404
    contract.call("PATCH", f"/products/{product['id']}", item, token=admin, json={"price": "3.00"})

    stock = "/inventory/{product_id}"
    contract.call("POST", f"/inventory/{product['id']}", stock, token=admin, json={"quantity": 5})
    contract.call("GET", f"/inventory/{product['id']}", stock)
    contract.call("DELETE", f"/inventory/{product['id']}", stock, token=admin, json={"quantity": 9})

    placed = contract.call("POST", "/orders", "/orders", token=token, json={
        "items": [{"product_id": product["id"], "quantity": 2}]}).json()
    order = "/orders/{order_id}"
    api.settled(token, placed["id"])
    contract.call("GET", f"/orders/{placed['id']}", order, token=token)
    contract.call("GET", "/orders", "/orders", token=token)
    contract.call("POST", f"/orders/{placed['id']}/pay", order + "/pay", token=token)
    contract.call("POST", f"/orders/{placed['id']}/pay", order + "/pay", token=token)  # 409
    contract.call("POST", f"/orders/{placed['id']}/cancel", order + "/cancel", token=token)
    rejected = contract.call("POST", "/orders", "/orders", token=token, json={
        "items": [{"product_id": product["id"], "quantity": 50}]}).json()
    assert api.settled(token, rejected["id"])["status"] == "rejected"
    contract.call("GET", f"/orders/{rejected['id']}", order, token=token)  # with short lines
    contract.call("DELETE", f"/products/{product['id']}", item, token=admin)
    contract.call("GET", "/health", "/health")
    contract.call("GET", "/health/ready", "/health/ready")

    assert {status for _, _, status in contract.checked} == {
        200, 201, 202, 204, 400, 401, 403, 404, 409}
