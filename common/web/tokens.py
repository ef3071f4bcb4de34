"""The shop's access tokens: JWTs signed with HS256.

The users service issues them at login; the gateway verifies them itself,
with no RPC per request. Both read ``JWT.SECRET`` and ``JWT.LIFETIME_SECONDS``.
"""
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from nameko.extensions import DependencyProvider

from common.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "shop"
ROLES = ("customer", "admin")


@dataclass(frozen=True)
class Claims:
    user_id: int
    role: str
    expires_at: int

    @property
    def is_admin(self):
        return self.role == "admin"


# verified tokens a codec remembers; a client reuses its token until it expires
VERIFIED_CACHE_SIZE = 10_000


class TokenCodec:
    def __init__(self, secret, lifetime_seconds):
        self.secret = secret
        self.lifetime_seconds = lifetime_seconds
        # token -> Claims, for tokens whose signature and claims checked out:
        # decoding and the HMAC were a tenth of the gateway's CPU per request
        self.verified = OrderedDict()

    def issue(self, user_id, role, now=None):
        issued_at = int(now if now is not None else time.time())
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "role": role,
            "iat": issued_at,
            "exp": issued_at + self.lifetime_seconds,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token):
        """The token's claims, or :class:`Unauthorized` for a token that is
        expired, malformed, signed with another key or not signed at all.
        A token verified before is only checked for expiry again."""
        claims = self.verified.get(token)
        if claims is None:
            claims = self._decode(token)
            self.verified[token] = claims
            if len(self.verified) > VERIFIED_CACHE_SIZE:
                self.verified.popitem(last=False)  # the one verified longest ago
        if claims.expires_at <= time.time():
            self.verified.pop(token, None)
            raise Unauthorized("The access token has expired", "token_expired")
        return claims

    def _decode(self, token):
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired", "token_expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("The access token is invalid", "invalid_token") from None
        if claims.get("role") not in ROLES or not claims["sub"].isdigit():
            raise Unauthorized("The access token is invalid", "invalid_token")
        return Claims(int(claims["sub"]), claims["role"], claims["exp"])


class Tokens(DependencyProvider):
    """Injects a :class:`TokenCodec` built from the ``JWT`` settings."""

    def setup(self):
        settings = self.container.config["JWT"]
        self.codec = TokenCodec(settings["SECRET"], settings["LIFETIME_SECONDS"])

    def get_dependency(self, worker_ctx):
        return self.codec
