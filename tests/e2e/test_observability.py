"""Following one order: its request id in every service's logs (the real
processes of ``make run``), the counters it moves in every service's
Prometheus metrics, and one trace across the three services it crosses
(orders prices it from its own copy of the catalogue, without products)."""
import json
import os
import re
import signal
import uuid

import pytest
import requests
from nameko.testing.utils import get_container
from sqlalchemy import create_engine, text

from common.observability.telemetry import telemetry_of
from gateway.service import GatewayService
from inventory.service import InventoryService
from notifications.service import NotificationsService
from orders.service import OrdersService
from products.service import ProductsService
from tests.conftest import free_port
from tests.e2e.conftest import ADMIN, Api
from tests.e2e.test_launcher import launch, read_until
from tests.helpers import wait_for
from users.service import UsersService

pytestmark = pytest.mark.e2e

DOMAIN_SERVICES = {"users": UsersService, "products": ProductsService,
                   "inventory": InventoryService, "orders": OrdersService,
                   "notifications": NotificationsService}


def orders_knows(orders_engine, product_id):
    """Orders has the product in its copy of the catalogue."""
    with orders_engine.connect() as connection:
        return connection.execute(text("SELECT 1 FROM catalogue WHERE id = :id"),
                                  {"id": product_id}).first() is not None


def place_and_pay(api, request_id, orders_engine):
    """An order's whole path, every request sent with ``request_id``, for a
    product the orders service has heard of."""
    headers = {"X-Request-ID": request_id}
    admin = api.admin_token()
    product_id = api.product(admin)
    api.restock(admin, product_id, 5)
    wait_for(lambda: orders_knows(orders_engine, product_id))
    customer = api.customer_token(f"c{uuid.uuid4().hex[:8]}")
    answer = api.call("POST", "/orders", token=customer, headers=dict(headers),
                      json={"items": [{"product_id": product_id, "quantity": 2}]})
    assert answer.status_code == 202, answer.text
    assert answer.headers["X-Request-ID"] == request_id
    order = api.settled(customer, answer.json()["id"])
    assert order["status"] == "awaiting_payment"
    paid = api.call("POST", f"/orders/{order['id']}/pay", token=customer, headers=dict(headers))
    assert paid.status_code == 200, paid.text
    # inventory has taken the two paid units off its stock
    wait_for(lambda: api.stock(product_id)["on_hand"] == 3)
    return order["id"]


def test_one_request_id_follows_an_order_through_every_services_json_logs(
        rabbit_config, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        **{f"{name.upper()}_DB_URI": f"sqlite:///{tmp_path}/{name}.db"
           for name in DOMAIN_SERVICES},
        **{f"{name.upper()}_METRICS_PORT": "0" for name in DOMAIN_SERVICES},
        "MAIL_DIRECTORY": str(tmp_path / "mail"),
        "SHOP_ADMIN_USERNAME": ADMIN["USERNAME"],
        "SHOP_ADMIN_PASSWORD": ADMIN["PASSWORD"],
        "LOG_FORMAT": "json",
    }
    launcher = launch(env)
    request_id = f"follow-{uuid.uuid4().hex}"
    try:
        read_until(launcher, "Gateway listening on", timeout=60)
        place_and_pay(Api(f"http://127.0.0.1:{port}", database_engines=None), request_id,
                      create_engine(f"sqlite:///{tmp_path}/orders.db"))
        # the receipt: the payment's request id reaches the notifications service too
        wait_for(lambda: any("Subject: Your receipt" in path.read_text()
                             for path in (tmp_path / "mail").glob("*.eml")))
    finally:
        launcher.send_signal(signal.SIGINT)
        output = launcher.communicate(timeout=30)[0]

    lines = []
    for line in output.splitlines():
        # the launcher prefixes each service's lines with "name     | "
        match = re.match(r"^(\w+)\s*\| (\{.*\})$", line)
        if match:
            lines.append((match.group(1), json.loads(match.group(2))))
    assert lines, output
    for _, record in lines:
        assert {"time", "level", "service", "entrypoint", "call_id", "request_id",
                "message"} <= record.keys()
    followed = [(process, record) for process, record in lines
                if record["request_id"] == request_id]
    assert {process for process, _ in followed} == {
        "gateway", "orders", "inventory", "notifications"}
    assert all(record["service"] == process for process, record in followed)
    handled = {(record["service"], record["entrypoint"]) for _, record in followed}
    assert {("gateway", "place_order"), ("orders", "place_order"),
            ("inventory", "on_stock_reservation_requested"),
            ("orders", "on_stock_reserved"), ("gateway", "pay_order"),
            ("orders", "pay_order"), ("inventory", "on_order_paid"),
            ("notifications", "on_order_paid")} <= handled
    # every line of one worker names the same call id, and each call id one worker
    assert all(record["call_id"].startswith(f"{record['service']}.{record['entrypoint']}.")
               for _, record in followed)


def scrape(url):
    """``{(name, frozenset(labels)): value}`` of a Prometheus text page."""
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in answer.text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def telemetry(runner, service_cls):
    return telemetry_of(get_container(runner, service_cls))


def metrics_urls(runner, api):
    """Each domain service's metrics page, on its own port, and the gateway's."""
    urls = {name: f"http://127.0.0.1:{telemetry(runner, cls).metrics_port}/metrics"
            for name, cls in DOMAIN_SERVICES.items()}
    urls["gateway"] = f"{api.base_url}/metrics"
    return urls


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize("settings", [{"METRICS": {
    "HOST": "127.0.0.1", "PORTS": {name: 0 for name in DOMAIN_SERVICES}}}])
def test_placing_and_paying_an_order_moves_the_counters_of_every_service(runner, api):
    urls = metrics_urls(runner, api)
    before = {name: scrape(url) for name, url in urls.items()}
    place_and_pay(api, f"metrics-{uuid.uuid4().hex}", api.database_engines["orders"])
    after = {name: scrape(url) for name, url in urls.items()}

    def moved(page, name, **labels):
        return sample(after[page], name, **labels) - sample(before[page], name, **labels)

    for status in ("pending", "awaiting_payment", "paid"):
        assert moved("orders", "shop_orders_total", status=status) == 1, status
    assert moved("orders", "shop_orders_total", status="rejected") == 0
    assert moved("inventory", "shop_reservations_total", result="reserved") == 1
    assert moved("inventory", "shop_reservations_total", result="failed") == 0
    calls = "shop_entrypoint_calls_total"
    assert moved("gateway", calls, service="gateway", entrypoint="place_order", kind="http",
                 outcome="ok") == 1
    assert moved("orders", calls, service="orders", entrypoint="place_order", kind="rpc",
                 outcome="ok") == 1
    assert moved("products", calls, service="products", entrypoint="get_many", kind="rpc",
                 outcome="ok") == 0  # orders priced it from its own copy
    assert moved("inventory", calls, service="inventory",
                 entrypoint="on_stock_reservation_requested", kind="event", outcome="ok") == 1
    assert moved("orders", "shop_entrypoint_duration_seconds_count", service="orders",
                 entrypoint="pay_order", kind="rpc") == 1
    # the outbox has published everything the order wrote
    for page in ("orders", "inventory"):
        labels = frozenset({("service", page)})
        assert after[page][("shop_outbox_backlog", labels)] == 0
        assert after[page][("shop_outbox_oldest_seconds", labels)] == 0
    assert after["orders"][("shop_orders_pending", frozenset({("service", "orders")}))] == 0
    assert moved("orders", "shop_order_reservation_seconds_count",
                 status="awaiting_payment") == 1
    # the HTTP answers, by status code
    assert moved("gateway", "shop_http_responses_total", service="gateway",
                 entrypoint="place_order", code="202") == 1
    # no breaker opened, and no dead letter waits
    assert sample(after["gateway"], "shop_circuit_breaker_open", service="gateway",
                  target="orders") == 0
    assert ("shop_circuit_breaker_open", frozenset({("service", "gateway"),
                                                    ("target", "orders")})) in after["gateway"]
    assert after["orders"][("shop_dead_letters", frozenset({("service", "orders")}))] == 0
    assert after["orders"][("process_resident_memory_bytes", frozenset())] > 0
    # and no event delivery failed anywhere
    assert not [key for page in after.values() for key in page
                if key[0] == "shop_event_failures_total"]


@pytest.mark.parametrize("settings", [{"TRACING": {"EXPORTER": "memory"}}])
def test_one_order_is_one_trace_across_gateway_orders_and_inventory(runner, api):
    exporters = [telemetry(runner, cls).tracer.exporter
                 for cls in (*DOMAIN_SERVICES.values(), GatewayService)]
    # the client's own trace, which the order joins
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"

    admin = api.admin_token()
    product_id = api.product(admin)
    api.restock(admin, product_id, 5)
    wait_for(lambda: orders_knows(api.database_engines["orders"], product_id))
    customer = api.customer_token()
    placed = api.call("POST", "/orders", token=customer, headers={"traceparent": traceparent},
                      json={"items": [{"product_id": product_id, "quantity": 1}]})
    assert placed.status_code == 202
    assert api.settled(customer, placed.json()["id"])["status"] == "awaiting_payment"

    spans = [span for exporter in exporters for span in exporter.get_finished_spans()
             if format(span.context.trace_id, "032x") == trace_id]
    services = {span.resource.attributes["service.name"] for span in spans}
    assert services == {"gateway", "orders", "inventory"}
    names = {span.name for span in spans}
    assert {"http gateway.place_order", "rpc call orders.place_order", "rpc orders.place_order",
            "publish orders.stock_reservation_requested",
            "event inventory.on_stock_reservation_requested",
            "publish inventory.stock_reserved", "event orders.on_stock_reserved"} <= names
    # one tree: every span's parent is in the trace, but the client's span
    ids = {span.context.span_id for span in spans}
    roots = [span for span in spans if span.parent.span_id not in ids]
    assert [format(span.parent.span_id, "016x") for span in roots] == ["00f067aa0ba902b7"]
    by_id = {span.context.span_id: span for span in spans}
    consumer = next(span for span in spans if span.name == "event orders.on_stock_reserved")
    chain = []
    while consumer.parent.span_id in by_id:
        consumer = by_id[consumer.parent.span_id]
        chain.append(consumer.name)
    assert chain[-1] == "http gateway.place_order"

