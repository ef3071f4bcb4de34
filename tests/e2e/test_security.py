"""Security checks over real HTTP: tokens that must be refused, secrets that
must never leave, input limits, login throttling and CORS."""
import base64
import json
import logging
import time

import jwt
import pytest

from common.web.tokens import TokenCodec

pytestmark = pytest.mark.e2e

CORS_ORIGIN = "https://shop.example"


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def secret(shop_config):
    return shop_config["JWT"]["SECRET"]


def test_forged_and_expired_tokens_are_refused(api, secret):
    valid = api.customer_token()
    header, payload, signature = valid.split(".")
    claims = jwt.decode(valid, options={"verify_signature": False})
    now = int(time.time())
    forged = {
        "expired": TokenCodec(secret, 60).issue(claims["sub"], "customer", now=now - 3600),
        "tampered": f"{header}.{b64({**claims, 'role': 'admin'})}.{signature}",
        "wrong signature": TokenCodec("another-secret-of-at-least-32-chars!!", 60)
        .issue(claims["sub"], "admin"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({**claims, 'role': 'admin'})}.",
        "garbage": "not-a-token",
    }
    for name, token in forged.items():
        answer = api.call("GET", "/users/me", token=token)
        assert answer.status_code == 401, name
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert api.call("POST", "/products", token=token,
                        json={"name": "x", "price": "1"}).status_code == 401, name
    assert api.call("GET", "/users/me", token=valid).status_code == 200


def test_customers_cannot_change_the_catalogue_or_the_stock(api):
    admin, customer = api.admin_token(), api.customer_token()
    product = api.product(admin)
    for method, path, body in [
            ("POST", "/products", {"name": "x", "price": "1"}),
            ("PATCH", f"/products/{product}", {"price": "1"}),
            ("DELETE", f"/products/{product}", None),
            ("POST", f"/inventory/{product}", {"quantity": 1}),
            ("DELETE", f"/inventory/{product}", {"quantity": 1})]:
        answer = api.call(method, path, token=customer, json=body)
        assert answer.status_code == 403, (method, path)


def test_the_password_and_its_hash_never_leave(api, caplog):
    password = "a-secret-passphrase"
    caplog.set_level(logging.DEBUG)
    answers = [
        api.call("POST", "/register", json={
            "username": "carol", "email": "carol@example.com", "password": password}),
        api.call("POST", "/register", json={
            "username": "carol", "email": "carol@example.com", "password": password}),
        api.call("POST", "/register", json={
            "username": "c", "email": "carol@example.com", "password": password}),
        api.call("POST", "/login", json={"username": "carol", "password": password}),
        api.call("POST", "/login", json={"username": "carol", "password": password + "x"}),
    ]
    token = answers[3].json()["access_token"]
    answers.append(api.call("GET", "/users/me", token=token))
    for answer in answers:
        assert password not in answer.text and "$argon2" not in answer.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "The username 'carol' is already taken" in logged  # the refusals were logged
    assert password not in logged and "$argon2" not in logged


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/register", {"username": "u" * 33, "email": "a@example.com", "password": "p" * 8}),
    ("POST", "/register", {"username": "user", "email": "a@example.com", "password": "p" * 129}),
    ("POST", "/orders", {"items": [{"product_id": 1, "quantity": 1001}]}),
    ("POST", "/orders", {"items": [{"product_id": n, "quantity": 1} for n in range(1, 52)]}),
    ("POST", "/orders", {"items": []}),
    ("POST", "/products", {"name": "x" * 201, "price": "1.00"}),
    ("POST", "/products", {"name": "Cup", "price": "1.001"}),
])
def test_out_of_bounds_input_is_a_400(api, method, path, body):
    token = api.admin_token()
    answer = api.call(method, path, token=token, json=body)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_input"


def test_limits_on_paging_and_body_size(api):
    assert api.call("GET", "/products", params={"limit": 101}).status_code == 400
    assert api.call("GET", "/products", params={"limit": 100}).status_code == 200
    big = api.call("POST", "/register", data=b"{" + b" " * (1024 * 1024) + b"}",
                   headers={"Content-Type": "application/json"})
    assert big.status_code == 413


def test_repeated_failed_logins_are_refused_for_a_while(api):
    api.customer_token("dave")
    for _ in range(5):
        assert api.call("POST", "/login", json={
            "username": "dave", "password": "wrong-password"}).status_code == 401
    refused = api.call("POST", "/login", json={"username": "dave", "password": "wonderland"})
    assert refused.status_code == 429 and refused.json()["error"] == "login_throttled"
    assert 0 < int(refused.headers["Retry-After"]) <= 30
    # another username from the same client is not affected
    api.customer_token("erin")


def test_no_cors_headers_by_default(api):
    answer = api.call("GET", "/products", headers={"Origin": CORS_ORIGIN})
    assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("settings", [{"CORS": {"ALLOW_ORIGINS": CORS_ORIGIN}}])
def test_cors_for_allowed_origins_only(api):
    preflight = api.session.options(api.base_url + "/orders", timeout=10, headers={
        "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

    answer = api.call("GET", "/products", headers={"Origin": CORS_ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN
    other = api.call("GET", "/products", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
