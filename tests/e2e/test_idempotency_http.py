"""Idempotency-Key over HTTP, with two gateways and two orders instances: a
client that retries with its key gets one order and one charge, whichever
gateway and instance answers, even when it never saw the first answer."""
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from orders.service import OrdersService
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(api, second_gateway, container_factory, shop_config):
    """A product with 10 in stock, a customer, a second gateway and a second
    orders instance."""
    container_factory(OrdersService, shop_config).start()
    admin = api.admin_token()
    product_id = api.product(admin, price="5.00")
    assert api.restock(admin, product_id, 10).status_code == 200
    api.alice, api.product_id = api.customer_token("alice"), product_id
    _container, api.other = second_gateway()
    yield api
    wait_for(lambda: count_orders(api, "WHERE status = 'pending'") == 0)
    api.assert_stock_invariants()


def key_header(key):
    return {"Idempotency-Key": key}


def order_body(product_id, quantity=1):
    return {"items": [{"product_id": product_id, "quantity": quantity}]}


def count_orders(api, where=""):
    with api.database_engines["orders"].connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM orders {where}")).scalar_one()


def test_a_retry_with_the_key_is_the_first_answer_through_either_gateway(shop):
    key = str(uuid.uuid4())
    body = order_body(shop.product_id, 2)
    first = shop.call("POST", "/orders", shop.alice, json=body, headers=key_header(key))
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    for gateway in (shop, shop.other):
        again = gateway.call("POST", "/orders", shop.alice, json=body, headers=key_header(key))
        assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
    assert count_orders(shop) == 1
    shop.settled(shop.alice, first.json()["id"])
    assert shop.stock(shop.product_id)["reserved"] == 2  # reserved once


def test_eight_requests_with_one_key_at_once_make_one_order(shop):
    key = str(uuid.uuid4())
    body = order_body(shop.product_id)

    def place(gateway):
        return gateway.call("POST", "/orders", shop.alice, json=body, headers=key_header(key))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(place, [shop, shop.other] * 4))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {202, 409}, statuses
    placed = [answer for answer in answers if answer.status_code == 202]
    assert len({answer.json()["id"] for answer in placed}) == 1
    assert sum("Idempotent-Replayed" not in answer.headers for answer in placed) == 1
    for busy in (answer for answer in answers if answer.status_code == 409):
        assert busy.json()["error"] == "request_in_progress"
        assert busy.headers["Retry-After"] == "1"
    assert count_orders(shop) == 1


def test_the_key_sent_with_another_body_is_refused(shop):
    key = str(uuid.uuid4())
    placed = shop.call("POST", "/orders", shop.alice, json=order_body(shop.product_id),
                       headers=key_header(key))
    assert placed.status_code == 202
    other = shop.other.call("POST", "/orders", shop.alice, json=order_body(shop.product_id, 3),
                            headers=key_header(key))
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert count_orders(shop) == 1


def test_another_customers_request_with_the_same_key_is_their_own(shop):
    bob = shop.customer_token("bob")
    answers = [shop.call("POST", "/orders", token, json=order_body(shop.product_id),
                         headers=key_header("my-first-order")) for token in (shop.alice, bob)]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert not any("Idempotent-Replayed" in answer.headers for answer in answers)


@pytest.mark.parametrize("key", ["x" * 256, "clé"])
def test_a_key_that_is_not_printable_ascii_is_a_400(shop, key):
    answer = shop.call("POST", "/orders", shop.alice, json=order_body(shop.product_id),
                       headers={"Idempotency-Key": key.encode("utf-8")})
    assert answer.status_code == 400
    assert list(answer.json()["details"]) == ["Idempotency-Key"]
    assert count_orders(shop) == 0


def test_a_payment_and_a_cancellation_retried_with_their_keys_are_replayed(shop):
    first = shop.place(shop.alice, (shop.product_id, 1))
    second = shop.place(shop.alice, (shop.product_id, 1))
    for order in (first, second):
        shop.settled(shop.alice, order["id"])
    pay_key, cancel_key = str(uuid.uuid4()), str(uuid.uuid4())
    paid = [gateway.call("POST", f"/orders/{first['id']}/pay", shop.alice,
                         headers=key_header(pay_key)) for gateway in (shop, shop.other)]
    assert [answer.status_code for answer in paid] == [200, 200]
    assert paid[1].headers["Idempotent-Replayed"] == "true" and paid[1].json() == paid[0].json()
    assert paid[0].json()["status"] == "paid"
    cancelled = [gateway.call("POST", f"/orders/{second['id']}/cancel", shop.alice,
                              headers=key_header(cancel_key)) for gateway in (shop.other, shop)]
    assert [answer.status_code for answer in cancelled] == [200, 200]
    assert cancelled[1].json() == cancelled[0].json() and cancelled[0].json()["status"] == "cancelled"
    with shop.database_engines["orders"].connect() as connection:
        payments = connection.execute(text(
            "SELECT payment_id FROM orders WHERE payment_id IS NOT NULL")).scalars().all()
    assert len(payments) == 1


def test_an_order_whose_answer_was_lost_is_placed_once_when_retried(shop):
    """The client sends its order and closes the connection without reading
    the answer; its retry with the key finds that order."""
    key = str(uuid.uuid4())
    body = b'{"items": [{"product_id": %d, "quantity": 1}]}' % shop.product_id
    address = urlsplit(shop.base_url)
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(
            b"POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + shop.alice.encode() + b"\r\n"
            b"Idempotency-Key: " + key.encode() + b"\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    wait_for(lambda: count_orders(shop) == 1)  # the shop placed it; its answer went nowhere
    answers = []

    def retried():
        answers.append(shop.other.call("POST", "/orders", shop.alice,
                                       json=order_body(shop.product_id), headers=key_header(key)))
        return answers[-1].status_code == 202

    wait_for(retried, timeout=10)  # a 409 while the first request is still finishing
    assert {answer.status_code for answer in answers} <= {202, 409}
    assert answers[-1].headers["Idempotent-Replayed"] == "true"
    assert count_orders(shop) == 1


def test_the_document_describes_the_key_on_the_three_routes(shop):
    document = shop.call("GET", "/openapi.json").json()
    for path in ("/orders", "/orders/{order_id}/pay", "/orders/{order_id}/cancel"):
        operation = document["paths"][path]["post"]
        assert "Idempotency-Key" in [parameter["name"] for parameter in operation["parameters"]]
        assert {"409", "422"} <= set(operation["responses"])
        [success] = [status for status in operation["responses"] if status.startswith("2")]
        assert "Idempotent-Replayed" in operation["responses"][success]["headers"]
