"""Searching the catalogue over HTTP: GET /products with words, filters and
an order, GET /categories, and a change seen by every gateway's search
within a second."""
import time

import pytest

pytestmark = pytest.mark.e2e


def make(api, admin, name, price="10.00", **fields):
    response = api.call("POST", "/products", token=admin,
                        json={"name": name, "price": price, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def search(api, **query):
    response = api.call("GET", "/products", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def names(page):
    return [product["name"] for product in page["items"]]


def test_search_by_words_category_and_price_sorted(api):
    admin = api.admin_token()
    make(api, admin, "Moka pot", "24.90", category="kitchen", description="Three cups")
    make(api, admin, "Moka pot, large", "44.90", category="kitchen")
    make(api, admin, "Cup", "6.00", category="kitchen", description="For the moka pot")
    make(api, admin, "电动咖啡壶", "39.00", category="kitchen")
    make(api, admin, "Flower pot", "12.00", category="garden")
    page = search(api, q="MOK", category="kitchen", max_price="40.00", sort="-price")
    assert names(page) == ["Moka pot", "Cup"]
    assert page["total"] == 2
    assert page | {"items": None} == {
        "items": None, "total": 2, "q": "MOK", "category": "kitchen", "max_price": "40.00",
        "sort": "-price", "limit": 20, "offset": 0}
    assert names(search(api, q="moka"))[-1] == "Cup"  # a match in the name ranks first
    assert names(search(api, q="咖啡")) == ["电动咖啡壶"]
    # Cup (6.00, "pot" in its description), Flower pot (12.00), then:
    assert names(search(api, q="pot", limit=1, offset=2, sort="price")) == ["Moka pot"]
    assert api.call("GET", "/categories").json() == {"items": [
        {"name": "garden", "count": 1}, {"name": "kitchen", "count": 4}]}


@pytest.mark.parametrize("query", ["%", "_", "'", '"', "\\", "&|!", ":*", "(a)", "' OR 1=1 --"])
def test_a_hostile_query_finds_what_holds_it_or_nothing_and_never_fails(api, query):
    admin = api.admin_token()
    make(api, admin, "Plain mug")
    holding = make(api, admin, f"Mug {query}")
    page = search(api, q=query)
    assert [product["id"] for product in page["items"]] == [holding["id"]]


@pytest.mark.parametrize("query, field, says", [
    ({"q": "x" * 201}, "q", "Longer than maximum length 200."),
    ({"sort": "cheap"}, "sort", "Must be one of: relevance, newest, price, -price, name."),
    ({"min_price": "9.00", "max_price": "1.00"}, "min_price", "Must not be above max_price."),
    ({"sort": "price", "after": "3"}, "after",
     "after pages in id order: use offset with q or sort."),
    ({"max_price": "1.234"}, "max_price",
     'Must be a decimal amount with at most 2 decimal places, such as "12.50".'),
])
def test_a_search_it_cannot_answer_is_a_400_that_says_why(api, query, field, says):
    response = api.call("GET", "/products", params=query)
    assert response.status_code == 400
    assert response.json()["details"] == {field: [says]}


def test_an_admin_sets_and_clears_a_product_category(api):
    admin = api.admin_token()
    product = make(api, admin, "Rake", category="garden")
    assert product["category"] == "garden"
    changed = api.call("PATCH", f"/products/{product['id']}", token=admin,
                       json={"category": None}).json()
    assert changed["category"] is None
    assert api.call("GET", f"/products/{product['id']}").json()["category"] is None
    assert api.call("GET", "/categories").json() == {"items": []}
    blank = api.call("PATCH", f"/products/{product['id']}", token=admin, json={"category": " "})
    assert blank.status_code == 400


def within_a_second(gateway, q, names_found, categories):
    """Waits until the gateway's search for ``q`` answers ``names_found``
    and its categories are ``categories``; fails after a second."""
    deadline = time.monotonic() + 1.0
    while True:
        seen = (names(search(gateway, q=q)), gateway.call("GET", "/categories").json()["items"])
        if seen == (names_found, categories):
            return
        assert time.monotonic() < deadline, seen
        time.sleep(0.02)


def test_a_product_created_renamed_or_deleted_is_searched_so_through_every_gateway(
        api, second_gateway):
    _, other = second_gateway()
    admin = api.admin_token()
    gateways = (api, other)
    for gateway in gateways:  # each caches the empty list of categories
        within_a_second(gateway, "moka", [], [])
    product = make(api, admin, "Moka pot", category="kitchen")
    for gateway in gateways:
        within_a_second(gateway, "moka", ["Moka pot"], [{"name": "kitchen", "count": 1}])
    api.call("PATCH", f"/products/{product['id']}", token=admin,
             json={"name": "Stovetop brewer", "category": "brewing"})
    for gateway in gateways:
        within_a_second(gateway, "moka", [], [{"name": "brewing", "count": 1}])
        within_a_second(gateway, "stove", ["Stovetop brewer"], [{"name": "brewing", "count": 1}])
    api.call("DELETE", f"/products/{product['id']}", token=admin)
    for gateway in gateways:
        within_a_second(gateway, "stove", [], [])
