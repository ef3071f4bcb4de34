"""Bearer tokens on requests, verified here with no RPC per request."""
from common.errors import Forbidden, Unauthorized
from common.web.tokens import Tokens


class RequestAuth:
    def __init__(self, codec):
        self.codec = codec

    def user(self, request):
        """The claims of the request's bearer token, or 401."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "This needs an access token: send 'Authorization: Bearer <token>'",
                "missing_token")
        return self.codec.verify(token.strip())

    def admin(self, request):
        """The claims of an admin's bearer token: 401 without one, 403 for a customer."""
        claims = self.user(request)
        if not claims.is_admin:
            raise Forbidden("Only an admin may do this", "admin_only")
        return claims


class Auth(Tokens):
    def get_dependency(self, worker_ctx):
        return RequestAuth(self.codec)
