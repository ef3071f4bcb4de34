"""RPC that cannot hang: the gateway over real HTTP and RabbitMQ, in front of
a products service that is slow, failing, or not running at all."""
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import eventlet
import pytest
import requests
from kombu import Connection, Exchange, Queue
from nameko.messaging import QueueConsumer
from nameko.rpc import rpc
from nameko.testing.utils import get_container

from common.messaging.rpc import ShopReplyListener
from common.web.tokens import TokenCodec
from gateway.service import GatewayService
from orders.service import OrdersService
from products.service import ProductsService
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


class SlowProducts:
    """Answers ``get`` after ``delay`` seconds."""

    name = "products"
    delay = 0

    @rpc
    def get(self, product_id):
        eventlet.sleep(SlowProducts.delay)
        return {"id": product_id}

    @rpc
    def get_many(self, ids):
        eventlet.sleep(SlowProducts.delay)
        return []


@pytest.fixture
def config(shop_config):
    shop_config["RPC"] = {"TIMEOUT_SECONDS": 0.3, "BREAKER_FAILURES": 2,
                          "BREAKER_RESET_SECONDS": 1}
    # every GET /products/<id> here must be an RPC call, not a cached answer
    shop_config["CATALOGUE_CACHE"] = {"ENABLED": False}
    return shop_config


@pytest.fixture
def get_product(config):
    base = f"http://{config['WEB_SERVER_ADDRESS']}"

    def get():
        started = time.monotonic()
        response = requests.get(f"{base}/products/1", timeout=10)
        return response, time.monotonic() - started

    return get


def test_a_slow_service_answers_503_after_the_timeout_and_the_breaker_opens(
        runner_factory, config, get_product):
    SlowProducts.delay = 2
    runner_factory(config, GatewayService, SlowProducts).start()

    for _ in range(2):
        response, took = get_product()
        assert response.status_code == 503 and 0.3 <= took < 1.5
        assert response.json()["error"] == "service_timeout"
        assert response.json()["message"] == "The products service did not answer within 0.3 s"
        assert response.headers["Retry-After"] == "1"

    # two calls in a row got no answer: the breaker answers at once
    response, took = get_product()
    assert response.status_code == 503 and took < 0.2
    assert response.json()["error"] == "circuit_open"
    # and the gateway's metrics say so, and count the 503s
    metrics = requests.get(f"http://{config['WEB_SERVER_ADDRESS']}/metrics", timeout=5).text
    assert breaker_open(metrics, "products") == 1.0
    assert breaker_open(metrics, "orders") == 0.0
    assert ('shop_http_responses_total{code="503",entrypoint="get_product",service="gateway"}'
            ' 3.0') in metrics

    # the service recovers; after the reset time a trial call closes the breaker
    SlowProducts.delay = 0
    time.sleep(1.1)
    response, _ = get_product()
    assert response.status_code == 200 and response.json() == {"id": 1}
    metrics = requests.get(f"http://{config['WEB_SERVER_ADDRESS']}/metrics", timeout=5).text
    assert breaker_open(metrics, "products") == 0.0


def breaker_open(metrics_page, target):
    """``shop_circuit_breaker_open`` of the gateway's breaker for ``target``."""
    [value] = re.findall(
        rf'^shop_circuit_breaker_open{{service="gateway",target="{target}"}} (\S+)$',
        metrics_page, re.MULTILINE)
    return float(value)


def test_calls_to_one_service_run_side_by_side(runner_factory, config, get_product):
    SlowProducts.delay = 0.2
    config["RPC"]["TIMEOUT_SECONDS"] = 2
    runner_factory(config, GatewayService, SlowProducts).start()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: get_product()[0], range(8)))
    took = time.monotonic() - started
    assert [answer.status_code for answer in answers] == [200] * 8
    # one at a time, the eight calls would take 8 x 0.2 s
    assert took < 0.8, took


def test_a_service_that_is_not_running_answers_503(runner_factory, config, get_product):
    runner_factory(config, GatewayService).start()
    response, took = get_product()
    assert response.status_code == 503 and took < 1.5
    assert response.json() == {"error": "service_unavailable",
                               "message": "The products service is not running"}


def test_a_call_between_services_times_out_too(runner_factory, config):
    """The gateway calls orders, which calls products: products' silence
    reaches the client as a 503, not as a hang."""
    SlowProducts.delay = 2
    config["RPC"]["TIMEOUT_SECONDS"] = 0.5
    runner_factory(config, GatewayService, OrdersService, SlowProducts).start()
    token = TokenCodec(config["JWT"]["SECRET"], 60).issue(7, "customer")
    started = time.monotonic()
    response = requests.post(
        f"http://{config['WEB_SERVER_ADDRESS']}/orders", timeout=10,
        headers={"Authorization": f"Bearer {token}"},
        json={"items": [{"product_id": 1, "quantity": 1}]})
    assert response.status_code == 503 and time.monotonic() - started < 1.5
    assert response.json()["message"] in (
        # whichever gives up first: orders waiting for products, or the gateway for orders
        "The products service did not answer within 0.5 s",
        "The orders service did not answer within 0.5 s")


def test_a_service_known_to_answer_is_still_found_missing_once_its_queue_is_gone(
        runner_factory, config, get_product):
    """Every request is confirmed by the broker, so a queue that has gone is
    reported at once, even for a service that answered before."""
    SlowProducts.delay = 0
    runner = runner_factory(config, GatewayService, SlowProducts)
    runner.start()
    assert get_product()[0].status_code == 200

    get_container(runner, SlowProducts).stop()  # its durable queue stays
    response, _ = get_product()
    assert response.json()["error"] == "service_timeout"

    with Connection(config["AMQP_URI"]) as connection:
        connection.default_channel.queue_delete("rpc-products")
    response, took = get_product()
    assert took < 0.25
    assert response.json() == {"error": "service_unavailable",
                               "message": "The products service is not running"}


def test_a_request_its_caller_gave_up_on_expires_in_the_queue(runner_factory, config, get_product):
    """A service that comes back does not run what its callers stopped waiting for."""
    SlowProducts.delay = 0
    runner = runner_factory(config, GatewayService, SlowProducts)
    runner.start()
    get_container(runner, SlowProducts).stop()  # its durable queue stays
    # a timeout, not "not running": the request was routed to the queue
    assert get_product()[0].json()["error"] == "service_timeout"

    def waiting():
        with Connection(config["AMQP_URI"]) as connection:
            return connection.default_channel.queue_declare(
                "rpc-products", passive=True).message_count

    wait_for(lambda: waiting() == 0, timeout=3)  # the timeout is 0.3 s


def test_a_service_whose_database_is_down_answers_503_with_retry_after(
        runner_factory, config, get_product, tmp_path):
    # a database that cannot be opened: as a PostgreSQL that is restarting,
    # every statement fails to connect
    config["DB_URIS"] = {**config["DB_URIS"],
                         "products": f"sqlite:///{tmp_path}/no-such-directory/products.db"}
    # time for the service to try twice more before it answers
    config["RPC"]["TIMEOUT_SECONDS"] = 3
    runner_factory(config, GatewayService, ProductsService).start()
    for _ in range(3):  # an answer, not a failure: the breaker stays closed
        response, _ = get_product()
        assert response.status_code == 503
        assert response.json()["error"] == "database_unavailable"
        assert "database is unavailable" in response.json()["message"]
        assert response.headers["Retry-After"] == "1"


def test_a_request_the_broker_will_not_take_answers_503_once_its_retries_are_spent(
        runner_factory, config, get_product):
    """A nack: a queue that refuses every message takes products' requests."""
    config["RPC"]["TIMEOUT_SECONDS"] = 10  # more than the publish's retries take
    runner_factory(config, GatewayService).start()
    refusing = Queue("rpc-products", Exchange("nameko-rpc", type="topic", durable=True),
                     routing_key="products.*", durable=False, auto_delete=True,
                     queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with Connection(config["AMQP_URI"]) as connection:
        refusing(connection.default_channel).declare()
        response, took = get_product()
    assert response.status_code == 503 and 3 <= took < 5  # 3 retries, a second apart
    assert response.json() == {"error": "broker_unavailable",
                               "message": "The message broker did not take the request"}


class OrdersBeforeKeys:
    """The orders service of a release before 0.2.0, as during a rollback:
    its place_order takes no idempotency key."""

    name = "orders"
    placed = []

    @rpc
    def place_order(self, user_id, items):
        OrdersBeforeKeys.placed.append(items)
        return {"id": len(OrdersBeforeKeys.placed), "user_id": user_id, "status": "pending"}


def test_a_keyed_order_reaches_an_orders_service_that_takes_no_key(runner_factory, config):
    """The gateway sends the key; nameko refuses the call before running it;
    the gateway places the order once without the key, and answers 202."""
    OrdersBeforeKeys.placed = []
    runner_factory(config, GatewayService, OrdersBeforeKeys).start()
    token = TokenCodec(config["JWT"]["SECRET"], 60).issue(7, "customer")
    response = requests.post(
        f"http://{config['WEB_SERVER_ADDRESS']}/orders", timeout=10,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "rollback-1"},
        json={"items": [{"product_id": 1, "quantity": 2}]})
    assert response.status_code == 202
    assert response.json() == {"id": 1, "user_id": 7, "status": "pending"}
    assert "Idempotent-Replayed" not in response.headers
    assert OrdersBeforeKeys.placed == [[{"product_id": 1, "quantity": 2}]]


def test_a_reply_whose_ack_fails_with_the_connection_still_reaches_its_caller(rabbit_config):
    """RabbitMQ restarting just as a reply arrives: the ack goes nowhere.
    nameko's queue consumer lets that error out, which kills the calling
    service (the gateway did so in make chaos); the shop's logs it, and the
    reply answers the call."""
    queue = Queue("replies-probe", durable=False, auto_delete=True)
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        bound = queue(connection.default_channel)
        bound.declare()
        for correlation_id in ("call-1", "call-2"):
            connection.Producer().publish({"result": 42}, routing_key="replies-probe",
                                          correlation_id=correlation_id)
        wait_for(lambda: bound.queue_declare(passive=True).message_count == 2)
        first, second = bound.get(), bound.get()
        # the connection is gone: what is written to it now fails
        connection.connection.sock.shutdown(socket.SHUT_WR)

        listener = ShopReplyListener()
        answer = listener.get_reply_event("call-1")
        listener.handle_message({"result": 42}, first)
        assert answer.wait() == {"result": 42}

        with pytest.raises(OSError):
            QueueConsumer.ack_message(listener.queue_consumer, second)
