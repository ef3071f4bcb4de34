import copy
import os
import shutil
import time
from collections import Counter

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from sqlalchemy import text

from gateway.service import GatewayService
from inventory.service import InventoryService
from notifications.service import NotificationsService
from orders.service import OrdersService
from products.service import ProductsService
from tests.conftest import free_port
from tests.e2e.storefront import Storefront
from users.service import UsersService

ADMIN = {"USERNAME": "admin", "PASSWORD": "admin-password", "EMAIL": "admin@example.com"}


class Api:
    """requests against the running gateway, with the JSON error shape checked on every answer."""

    def __init__(self, base_url, database_engines):
        self.base_url = base_url
        self.session = requests.Session()
        self.database_engines = database_engines
        # units each product was restocked with and written off, through the API
        self.restocked = Counter()
        self.written_off = Counter()

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
            assert body["error"] and body["message"], body
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

    def product(self, admin, name="Moka pot", price="34.90", **fields):
        response = self.call("POST", "/products", token=admin,
                             json={"name": name, "price": price, **fields})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def restock(self, admin, product_id, quantity):
        response = self.call("POST", f"/inventory/{product_id}", token=admin,
                             json={"quantity": quantity})
        if response.status_code == 200:
            self.restocked[product_id] += quantity
        return response

    def write_off(self, admin, product_id, quantity):
        response = self.call("DELETE", f"/inventory/{product_id}", token=admin,
                             json={"quantity": quantity})
        if response.status_code == 200:
            self.written_off[product_id] += quantity
        return response

    def stock(self, product_id):
        response = self.call("GET", f"/inventory/{product_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def place(self, token, *lines):
        """``place(token, (product_id, quantity), ...)``: the 202 answer's order."""
        response = self.call("POST", "/orders", token=token, json={
            "items": [{"product_id": p, "quantity": q} for p, q in lines]})
        assert response.status_code == 202, response.text
        return response.json()

    def settled(self, token, order_id, timeout=10):
        """The order once inventory has answered for it (no longer pending)."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.call("GET", f"/orders/{order_id}", token=token).json()
            if order["status"] != "pending" or time.monotonic() > deadline:
                return order
            time.sleep(0.05)

    def assert_stock_invariants(self):
        """For every product: 0 <= reserved <= on_hand; units are conserved
        (restocked - written off = on_hand + sold); and what is reserved is
        exactly what the orders awaiting payment hold. Call it once the
        orders have settled."""
        with self.database_engines["inventory"].connect() as connection:
            stock = {row.product_id: row for row in connection.execute(
                text("SELECT product_id, on_hand, reserved FROM stock"))}
        with self.database_engines["orders"].connect() as connection:
            held = Counter()
            for row in connection.execute(text(
                    "SELECT o.status, l.product_id, l.quantity FROM orders o "
                    "JOIN order_lines l ON l.order_id = o.id")):
                held[(row.status, row.product_id)] += row.quantity
        assert not any(status == "pending" for status, _ in held), "orders stuck pending"
        for product_id in set(stock) | set(self.restocked):
            row = stock[product_id]
            assert 0 <= row.reserved <= row.on_hand, (product_id, row)
            sold = held[("paid", product_id)]
            assert self.restocked[product_id] - self.written_off[product_id] == row.on_hand + sold
            assert row.reserved == held[("awaiting_payment", product_id)], (product_id, row)


@pytest.fixture
def settings():
    """Settings a test changes in config.yaml, by parametrizing this fixture:
    ``@pytest.mark.parametrize("settings", [{"RESERVATION_TTL_SECONDS": 1}])``."""
    return {}


@pytest.fixture
def runner(runner_factory, shop_config, settings, tmp_path):
    """Every service running against the real broker and databases; mails
    written under the test's directory."""
    shop_config.update(ADMIN=ADMIN, MAIL={"DIRECTORY": str(tmp_path / "mail")}, **settings)
    runner = runner_factory(
        shop_config, UsersService, ProductsService, InventoryService, OrdersService,
        NotificationsService, GatewayService)
    # the users service creates the admin in a worker right after it starts
    with entrypoint_waiter(get_container(runner, UsersService), "ensure_admin", timeout=10):
        runner.start()
    return runner


@pytest.fixture
def api(runner, shop_config, database_engines):
    """The HTTP API of the running services."""
    return Api(f"http://{shop_config['WEB_SERVER_ADDRESS']}", database_engines)


@pytest.fixture
def second_gateway(runner, shop_config, container_factory, database_engines):
    """Another gateway instance, on its own port, beside the runner's."""

    def start():
        config = copy.deepcopy(shop_config)
        config["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{free_port()}"
        container = container_factory(GatewayService, config)
        container.start()
        return container, Api(f"http://{config['WEB_SERVER_ADDRESS']}", database_engines)

    return start


@pytest.fixture
def browser(request):
    """Debian's Chromium, headless, driven by chromedriver; the window's size
    ``(width, height)`` by indirect parametrization, 1280 x 900 by default.
    Without them the test is skipped, or fails where SHOP_REQUIRE_BROWSER is
    set (.ci/run)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        message = "needs Debian's chromium and chromium-driver (apt install chromium chromium-driver)"
        if os.environ.get("SHOP_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    width, height = getattr(request, "param", (1280, 900))
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def storefront(browser, api):
    """The storefront the gateway serves, in the browser."""
    return Storefront(browser, api.base_url)
