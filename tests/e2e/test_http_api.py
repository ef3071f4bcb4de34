"""The HTTP API, end to end: requests -> gateway -> RabbitMQ -> services -> database."""
import pytest
import requests

pytestmark = pytest.mark.e2e


def test_the_readme_walk_through(api):
    registered = api.call("POST", "/register", json={
        "username": "alice", "email": "alice@example.com", "password": "wonderland"})
    assert registered.status_code == 201
    alice = registered.json()
    assert alice == {"id": alice["id"], "username": "alice", "email": "alice@example.com",
                     "role": "customer"}

    login = api.call("POST", "/login", json={"username": "alice", "password": "wonderland"})
    assert login.status_code == 200
    assert login.json()["token_type"] == "bearer" and login.json()["expires_in"] == 3600
    me = api.call("GET", "/users/me", token=login.json()["access_token"])
    assert me.status_code == 200 and me.json() == alice

    admin = api.admin_token()
    created = api.call("POST", "/products", token=admin, json={
        "name": "Espresso cup", "price": "7.50", "description": "80 ml", "category": "kitchen"})
    assert created.status_code == 201
    cup = created.json()
    assert cup["price"] == "7.50" and cup["category"] == "kitchen"
    found = api.call("GET", "/products", params={
        "q": "espr", "category": "kitchen", "max_price": "10.00", "sort": "price"}).json()
    assert found["items"] == [cup] and found["total"] == 1

    listing = api.call("GET", "/products")
    assert listing.status_code == 200
    assert listing.json() == {"items": [cup], "total": 1, "limit": 20, "offset": 0}
    assert api.call("GET", f"/products/{cup['id']}").json() == cup

    patched = api.call("PATCH", f"/products/{cup['id']}", token=admin, json={"price": "6.5"})
    assert patched.status_code == 200 and patched.json()["price"] == "6.50"
    deleted = api.call("DELETE", f"/products/{cup['id']}", token=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.call("GET", f"/products/{cup['id']}").status_code == 404


def test_register_conflict_and_validation(api):
    body = {"username": "alice", "email": "alice@example.com", "password": "wonderland"}
    assert api.call("POST", "/register", json=body).status_code == 201
    taken = api.call("POST", "/register", json={**body, "username": "ALICE"})
    assert taken.status_code == 409 and taken.json()["error"] == "username_taken"
    invalid = api.call("POST", "/register", json={"username": "x", "email": "no", "password": "1"})
    assert invalid.status_code == 400
    assert set(invalid.json()["details"]) == {"username", "email", "password"}
    assert "wonderland" not in taken.text + invalid.text


def test_login_failures_look_the_same(api):
    api.customer_token("alice")
    wrong = api.call("POST", "/login", json={"username": "alice", "password": "wrong-password"})
    unknown = api.call("POST", "/login", json={"username": "nobody", "password": "wrong-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer not-a-jwt", "Basic YWxpY2U6d29uZGVybGFuZA==",
])
def test_users_me_needs_a_valid_token(api, header):
    headers = {"Authorization": header} if header else {}
    response = api.call("GET", "/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_only_an_admin_changes_the_catalogue(api):
    customer = api.customer_token()
    admin = api.admin_token()
    product = api.call("POST", "/products", token=admin, json={"name": "Mug", "price": "9"}).json()
    for method, path, body in [
        ("POST", "/products", {"name": "Mug", "price": "9.00"}),
        ("PATCH", f"/products/{product['id']}", {"price": "1.00"}),
        ("DELETE", f"/products/{product['id']}", None),
    ]:
        assert api.call(method, path, token=customer, json=body).status_code == 403
        assert api.call(method, path, json=body).status_code == 401
    assert api.call("GET", f"/products/{product['id']}").json()["price"] == "9.00"


def test_paging_bounds(api):
    admin = api.admin_token()
    for n in range(3):
        api.call("POST", "/products", token=admin, json={"name": f"P{n}", "price": "1.00"})
    page = api.call("GET", "/products", params={"limit": 2, "offset": 2}).json()
    assert (len(page["items"]), page["total"], page["limit"], page["offset"]) == (1, 3, 2, 2)
    for params in ({"limit": 101}, {"limit": 0}, {"offset": -1}, {"limit": "ten"},
                   {"after": -1}, {"after": "x"}, {"after": 1, "offset": 1}):
        response = api.call("GET", "/products", params=params)
        assert response.status_code == 400, params


def test_a_page_after_a_product_goes_on_from_it(api):
    admin = api.admin_token()
    ids = [api.call("POST", "/products", token=admin, json={"name": f"P{n}", "price": "1.00"})
           .json()["id"] for n in range(5)]
    api.call("DELETE", f"/products/{ids[2]}", token=admin)
    page = api.call("GET", "/products", params={"limit": 2, "after": ids[1]}).json()
    assert [item["id"] for item in page["items"]] == [ids[3], ids[4]]
    assert (page["total"], page["limit"], page["after"]) == (4, 2, ids[1])
    last = api.call("GET", "/products", params={"limit": 2, "after": ids[4]}).json()
    assert last["items"] == []


def test_bad_requests_get_json_errors_not_500s(api):
    admin = api.admin_token()
    cases = [
        ("GET", "/nowhere", {}, 404),
        ("GET", "/products/abc", {}, 404),
        ("GET", "/products/0", {}, 404),
        ("GET", "/products/99999999999999999999", {}, 404),
        ("GET", "/products/12345", {}, 404),
        ("PUT", "/products", {}, 405),
        ("GET", "/login", {}, 405),
        ("POST", "/register", {"data": b"{not json"}, 400),
        ("POST", "/register", {"data": b"[]"}, 400),
        ("POST", "/register", {"data": b""}, 400),
        ("POST", "/products", {"token": admin, "json": {"name": "Mug", "price": "1.005"}}, 400),
        ("POST", "/products", {"token": admin, "json": {"name": "Mug", "price": "-1"}}, 400),
        ("POST", "/products", {"token": admin, "json": {"name": "x" * 201, "price": "1"}}, 400),
        ("PATCH", "/products/1", {"token": admin, "json": {"price": "1"}}, 404),
        ("POST", "/register", {"data": b'{"username": "' + b"a" * (1024 * 1024) + b'"}'}, 413),
    ]
    for method, path, kwargs, status in cases:
        response = api.call(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
    assert "POST" in api.call("GET", "/login").headers["Allow"]


def test_a_request_line_of_8_kib_is_refused_by_the_http_server_as_documented(api):
    # not api.call, which checks for the JSON error every answer of the API has
    response = requests.get(f"{api.base_url}/products?limit=20&q={'x' * 8192}", timeout=10)
    assert response.status_code == 414 and response.content == b""
    assert api.call("GET", "/products?limit=20").status_code == 200  # it serves on


def test_a_body_nested_100000_levels_deep_is_a_malformed_body(api):
    deep = b"[" * 100_000 + b"]" * 100_000
    for path, body in (("/register", deep), ("/login", b'{"username": ' + deep + b"}")):
        response = api.call("POST", path, data=body,
                            headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "malformed_body",
                                   "message": "The request body is nested too deeply"}


@pytest.mark.parametrize("price", [1.5, 2])
def test_a_price_given_as_a_json_number_is_refused(api, price):
    admin = api.admin_token()
    for method, path in (("POST", "/products"), ("PATCH", f"/products/{api.product(admin)}")):
        response = api.call(method, path, token=admin, json={"name": "Mug", "price": price})
        assert response.status_code == 400, response.text
        assert response.json()["details"] == {"price": [
            'Must be a string such as "12.50", not a number: money is never a float here.']}
