"""Orders and inventory through the gateway: the life cycle of an order, with
stock reserved and answered through events over the real broker, and the
orders service's copy of the catalogue kept by the product events."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(api):
    """A product with 5 in stock, an admin and a customer."""
    admin = api.admin_token()
    product_id = api.product(admin, price="12.45")
    assert api.restock(admin, product_id, 5).status_code == 200
    api.admin, api.alice, api.product_id = admin, api.customer_token("alice"), product_id
    yield api
    api.assert_stock_invariants()


def test_place_reserve_pay_commits_the_stock(shop):
    placed = shop.place(shop.alice, (shop.product_id, 2))
    assert placed["status"] == "pending"
    assert placed["items"] == [
        {"product_id": shop.product_id, "name": "Moka pot", "quantity": 2, "unit_price": "12.45"}]
    assert placed["total"] == "24.90"

    order = shop.settled(shop.alice, placed["id"])
    assert order["status"] == "awaiting_payment"
    assert shop.stock(shop.product_id) == {
        "product_id": shop.product_id, "on_hand": 5, "reserved": 2, "available": 3}

    paid = shop.call("POST", f"/orders/{placed['id']}/pay", token=shop.alice)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    again = shop.call("POST", f"/orders/{placed['id']}/pay", token=shop.alice)
    assert again.status_code == 409 and "paid" in again.json()["message"]
    wait_for(lambda: shop.stock(shop.product_id)["on_hand"] == 3)
    assert shop.stock(shop.product_id) == {
        "product_id": shop.product_id, "on_hand": 3, "reserved": 0, "available": 3}


def test_cancel_releases_the_stock(shop):
    placed = shop.place(shop.alice, (shop.product_id, 4))
    assert shop.settled(shop.alice, placed["id"])["status"] == "awaiting_payment"
    assert shop.stock(shop.product_id)["available"] == 1

    cancelled = shop.call("POST", f"/orders/{placed['id']}/cancel", token=shop.alice)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    wait_for(lambda: shop.stock(shop.product_id)["reserved"] == 0)
    assert shop.stock(shop.product_id)["available"] == 5

    pay = shop.call("POST", f"/orders/{placed['id']}/pay", token=shop.alice)
    assert pay.status_code == 409
    assert pay.json() == {"error": "illegal_transition",
                          "message": f"Order {placed['id']} is cancelled: it cannot pay now"}


def test_an_order_beyond_the_stock_is_rejected_with_its_short_lines(shop):
    other = shop.product(shop.admin, name="Filter papers", price="3.10")
    placed = shop.place(shop.alice, (shop.product_id, 4), (other, 1))
    order = shop.settled(shop.alice, placed["id"])
    assert order["status"] == "rejected"
    assert order["reason"] == "insufficient_stock"
    assert order["short"] == [{"product_id": other, "requested": 1, "available": 0}]
    # all or nothing: the line that could be reserved was not
    assert shop.stock(shop.product_id)["reserved"] == 0


@pytest.mark.parametrize("settings", [
    {"PAYMENTS": {"PROVIDER": "orders.payments.SimulatedPayments", "DECLINE": True}}])
def test_a_declined_payment_answers_402_and_leaves_the_order_awaiting_payment(shop):
    placed = shop.place(shop.alice, (shop.product_id, 1))
    shop.settled(shop.alice, placed["id"])
    declined = shop.call("POST", f"/orders/{placed['id']}/pay", token=shop.alice)
    assert declined.status_code == 402 and declined.json()["error"] == "payment_declined"
    order = shop.call("GET", f"/orders/{placed['id']}", token=shop.alice).json()
    assert order["status"] == "awaiting_payment"
    assert shop.stock(shop.product_id)["reserved"] == 1


@pytest.mark.parametrize("settings", [
    {"RESERVATION_TTL_SECONDS": 1, "EXPIRY_CHECK_SECONDS": 0.1}])
def test_an_unpaid_order_expires_and_its_stock_returns(shop):
    placed = shop.place(shop.alice, (shop.product_id, 2))
    assert shop.settled(shop.alice, placed["id"])["status"] == "awaiting_payment"
    wait_for(lambda: shop.call(
        "GET", f"/orders/{placed['id']}", token=shop.alice).json()["status"] == "expired")
    wait_for(lambda: shop.stock(shop.product_id)["reserved"] == 0)
    assert shop.stock(shop.product_id)["available"] == 5
    late = shop.call("POST", f"/orders/{placed['id']}/pay", token=shop.alice)
    assert late.status_code == 409 and "expired" in late.json()["message"]


def test_another_customer_cannot_see_pay_or_cancel_an_order(shop):
    placed = shop.place(shop.alice, (shop.product_id, 1))
    shop.settled(shop.alice, placed["id"])
    mallory = shop.customer_token("mallory")
    for method, path in [("GET", ""), ("POST", "/pay"), ("POST", "/cancel")]:
        answer = shop.call(method, f"/orders/{placed['id']}{path}", token=mallory)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["error"] == "order_not_found"
    assert shop.call("GET", "/orders", token=mallory).json()["total"] == 0
    # an admin may look at it
    seen = shop.call("GET", f"/orders/{placed['id']}", token=shop.admin)
    assert seen.status_code == 200 and seen.json()["user_id"] != 1


def test_own_orders_are_listed_newest_first(shop):
    first = shop.place(shop.alice, (shop.product_id, 1))
    second = shop.place(shop.alice, (shop.product_id, 1))
    for order in (first, second):
        shop.settled(shop.alice, order["id"])
    listing = shop.call("GET", "/orders", token=shop.alice, params={"limit": 1}).json()
    assert [order["id"] for order in listing["items"]] == [second["id"]]
    assert listing["total"] == 2 and listing["limit"] == 1 and listing["offset"] == 0


def test_an_admin_lists_every_customers_orders_and_a_customer_may_not(shop):
    alices = shop.place(shop.alice, (shop.product_id, 1))
    bobs = shop.place(shop.customer_token("bob"), (shop.product_id, 1))
    every = shop.call("GET", "/orders", token=shop.admin, params={"scope": "all"}).json()
    assert [order["id"] for order in every["items"]] == [bobs["id"], alices["id"]]
    assert every["total"] == 2 and every["limit"] == 20 and "scope" not in every
    # the admin's own orders: none
    assert shop.call("GET", "/orders", token=shop.admin).json()["total"] == 0
    refused = shop.call("GET", "/orders", token=shop.alice, params={"scope": "all"})
    assert refused.status_code == 403 and refused.json()["error"] == "admin_only"
    assert shop.call("GET", "/orders", token=shop.alice,
                     params={"scope": "everyone"}).status_code == 400
    for order in (alices, bobs):
        shop.settled(shop.admin, order["id"])


def test_unknown_products_and_bad_lines_are_refused(shop):
    unknown = shop.call("POST", "/orders", token=shop.alice, json={
        "items": [{"product_id": 999, "quantity": 1}]})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_product"
    assert "999" in unknown.json()["message"]
    for items in ([], [{"product_id": shop.product_id, "quantity": 0}],
                  [{"product_id": shop.product_id, "quantity": 1001}],
                  [{"product_id": shop.product_id, "quantity": 1}] * 51,
                  [{"product_id": shop.product_id, "quantity": "1"}]):
        answer = shop.call("POST", "/orders", token=shop.alice, json={"items": items})
        assert answer.status_code == 400, items
    no_token = shop.call("POST", "/orders", json={"items": [{"product_id": 1, "quantity": 1}]})
    assert no_token.status_code == 401


def test_stock_changes_are_for_admins_and_never_go_below_reserved(shop):
    placed = shop.place(shop.alice, (shop.product_id, 3))
    shop.settled(shop.alice, placed["id"])
    assert shop.restock(shop.alice, shop.product_id, 1).status_code == 403
    assert shop.restock(shop.admin, 999, 1).status_code == 404

    too_much = shop.write_off(shop.admin, shop.product_id, 3)
    assert too_much.status_code == 409
    written_off = shop.write_off(shop.admin, shop.product_id, 2)
    assert written_off.status_code == 200
    assert written_off.json() == {
        "product_id": shop.product_id, "on_hand": 3, "reserved": 3, "available": 0}


def test_concurrent_orders_never_oversell(api):
    """40 one-unit orders from 8 threads at once for 10 units in stock."""
    admin = api.admin_token()
    product_id = api.product(admin)
    api.restock(admin, product_id, 10)
    customers = [api.customer_token(f"buyer{n}") for n in range(8)]

    def place(n):
        token = customers[n % len(customers)]
        return token, api.place(token, (product_id, 1))["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(pool.map(place, range(40)))
    statuses = [api.settled(token, order_id, timeout=30)["status"] for token, order_id in placed]

    assert statuses.count("awaiting_payment") == 10
    assert statuses.count("rejected") == 30
    assert api.stock(product_id) == {
        "product_id": product_id, "on_hand": 10, "reserved": 10, "available": 0}
    api.assert_stock_invariants()


def orders_price_of(shop, product_id):
    """The price in the orders service's copy of the catalogue, or None."""
    with shop.database_engines["orders"].connect() as connection:
        row = connection.execute(text("SELECT price, deleted FROM catalogue WHERE id = :id"),
                                 {"id": product_id}).first()
    return None if row is None else (row.price, row.deleted)


def test_a_price_change_and_a_delete_reach_the_orders_copy_through_events(shop):
    wait_for(lambda: orders_price_of(shop, shop.product_id) == (1245, False))  # in cents
    changed = shop.call("PATCH", f"/products/{shop.product_id}", token=shop.admin,
                        json={"price": "9.99", "name": "Moka pot XL"})
    assert changed.status_code == 200
    wait_for(lambda: orders_price_of(shop, shop.product_id) == (999, False))
    placed = shop.place(shop.alice, (shop.product_id, 1))
    assert placed["items"] == [{"product_id": shop.product_id, "name": "Moka pot XL",
                                "quantity": 1, "unit_price": "9.99"}]
    shop.settled(shop.alice, placed["id"])

    assert shop.call("DELETE", f"/products/{shop.product_id}", token=shop.admin).status_code == 204
    wait_for(lambda: orders_price_of(shop, shop.product_id)[1])
    refused = shop.call("POST", "/orders", token=shop.alice, json={
        "items": [{"product_id": shop.product_id, "quantity": 1}]})
    assert refused.status_code == 400 and refused.json()["error"] == "unknown_product"
