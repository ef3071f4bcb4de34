import pytest
import requests
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from products.service import ProductsService
from users.service import UsersService

ADMIN = {"USERNAME": "admin", "PASSWORD": "admin-password", "EMAIL": "admin@example.com"}


class Api:
    """requests against the running gateway, with the JSON error shape checked on every answer."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.session = requests.Session()

    def call(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.session.request(
            method, self.base_url + path, headers=headers, timeout=10, **kwargs)
        if response.status_code != 204:
            assert response.headers["Content-Type"] == "application/json", response.text
        if response.status_code >= 400:
            body = response.json()
            assert set(body) <= {"error", "message", "details"} and body["error"] and body["message"]
        return response

    def token(self, username, password):
        response = self.call("POST", "/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def customer_token(self, username="alice"):
        self.call("POST", "/register", json={
            "username": username, "email": f"{username}@example.com", "password": "wonderland"})
        return self.token(username, "wonderland")

    def admin_token(self):
        return self.token(ADMIN["USERNAME"], ADMIN["PASSWORD"])


@pytest.fixture
def api(runner_factory, shop_config):
    """Users, products and the gateway running against the real broker and databases."""
    shop_config["ADMIN"] = ADMIN
    runner = runner_factory(shop_config, UsersService, ProductsService, GatewayService)
    # the users service creates the admin in a worker right after it starts
    with entrypoint_waiter(get_container(runner, UsersService), "ensure_admin", timeout=10):
        runner.start()
    return Api(f"http://{shop_config['WEB_SERVER_ADDRESS']}")
