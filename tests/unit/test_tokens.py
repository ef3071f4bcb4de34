import base64
import json
import time

import jwt
import pytest

from common.errors import Unauthorized
from common.web.tokens import TokenCodec

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def codec():
    return TokenCodec(SECRET, lifetime_seconds=600)


def test_a_token_carries_user_role_and_expiry(codec):
    now = int(time.time())
    claims = codec.verify(codec.issue(42, "admin", now=now))
    assert (claims.user_id, claims.role, claims.expires_at) == (42, "admin", now + 600)


def refused_as(codec, token):
    with pytest.raises(Unauthorized) as error:
        codec.verify(token)
    return error.value.code


def test_an_expired_token_is_refused(codec):
    token = codec.issue(1, "customer", now=time.time() - 601)
    assert refused_as(codec, token) == "token_expired"


def test_a_token_verified_before_is_still_refused_once_it_expires(codec, monkeypatch):
    issued_at = time.time()
    token = codec.issue(1, "customer", now=issued_at)
    assert codec.verify(token).user_id == 1
    monkeypatch.setattr(time, "time", lambda: issued_at + 600)
    assert refused_as(codec, token) == "token_expired"


def test_only_valid_tokens_are_remembered_and_only_so_many(codec, monkeypatch):
    monkeypatch.setattr("common.web.tokens.VERIFIED_CACHE_SIZE", 2)
    tokens = [codec.issue(user_id, "customer") for user_id in (1, 2, 3)]
    for token in tokens:
        codec.verify(token)
    refused_as(codec, tokens[0][:-2])
    assert list(codec.verified) == tokens[1:]


def test_a_token_signed_with_another_key_is_refused(codec):
    other = TokenCodec("another-secret-that-is-long-enough-too!!", 600)
    assert refused_as(codec, other.issue(1, "admin")) == "invalid_token"


def test_a_tampered_token_is_refused(codec):
    header, payload, signature = codec.issue(1, "customer").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refused_as(codec, f"{header}.{forged}.{signature}") == "invalid_token"


def test_an_unsigned_token_is_refused(codec):
    token = jwt.encode(
        {"iss": "shop", "sub": "1", "role": "admin", "iat": int(time.time()),
         "exp": int(time.time()) + 60}, key=None, algorithm="none")
    assert refused_as(codec, token) == "invalid_token"


@pytest.mark.parametrize("claims", [
    {"role": "superuser", "sub": "1"},
    {"role": "admin", "sub": "not-an-id"},
    {"role": "admin"},
])
def test_a_token_with_unexpected_claims_is_refused(codec, claims):
    now = int(time.time())
    token = jwt.encode({"iss": "shop", "iat": now, "exp": now + 60, **claims}, SECRET)
    assert refused_as(codec, token) == "invalid_token"


def test_garbage_is_refused(codec):
    assert refused_as(codec, "not.a.token") == "invalid_token"
