import logging

from nameko.dependency_providers import Config
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.data.db import Database
from common.errors import Conflict, NotFound, Unauthorized
from common.messaging.entrypoints import health_check, on_start, rpc
from common.messaging.outbox import Outbox
from common.observability.telemetry import Telemetry
from common.schemas import load, load_id
from common.web.tokens import Tokens
from users.contract import CONTRACT
from users.models import ADMIN, CUSTOMER, Base, OutboxMessage, User
from users.passwords import PasswordHasher
from users.schemas import CredentialsSchema, RegistrationSchema, UserIdsSchema, UserSchema

log = logging.getLogger(__name__)

user_schema = UserSchema()
BAD_CREDENTIALS = "Invalid username or password"


class UsersService:
    name = "users"

    db = Database(Base)
    passwords = PasswordHasher()
    tokens = Tokens()
    # a registration and its event commit together: a consumer never misses one
    outbox = Outbox(OutboxMessage, CONTRACT)
    telemetry = Telemetry()
    config = Config()

    ping = health_check()

    @rpc
    def register(self, username, email, password):
        """Create a customer account; emits ``user_registered``."""
        fields = load(RegistrationSchema, {
            "username": username, "email": email, "password": password})
        user = self._create_user(fields, CUSTOMER)
        registered = user_schema.dump(user)
        self.outbox.add("user_registered", registered)
        self.db.session.commit()
        return registered

    @rpc
    def authenticate(self, username, password):
        """A signed access token for valid credentials; the same
        :class:`Unauthorized` whether the user is unknown or the password wrong."""
        credentials = load(CredentialsSchema, {"username": username, "password": password})
        user = self._find_by_username(credentials["username"])
        if user is None:
            self.passwords.verify_nothing(credentials["password"])
            raise Unauthorized(BAD_CREDENTIALS, "invalid_credentials")
        if not self.passwords.verify(user.password_hash, credentials["password"]):
            raise Unauthorized(BAD_CREDENTIALS, "invalid_credentials")
        return {
            "access_token": self.tokens.issue(user.id, user.role),
            "token_type": "bearer",
            "expires_in": self.tokens.lifetime_seconds,
        }

    @rpc
    def get_user(self, user_id):
        user = self.db.session.get(User, load_id(user_id, "user"))
        if user is None:
            raise NotFound.entity("user", user_id)
        return user_schema.dump(user)

    @rpc
    def get_users(self, ids):
        """The users among ``ids`` that exist, in id order."""
        ids = load(UserIdsSchema, {"ids": ids})["ids"]
        users = self.db.session.scalars(select(User).where(User.id.in_(ids)).order_by(User.id))
        return user_schema.dump(users, many=True)

    @on_start
    def ensure_admin(self):
        """Create the admin account named by SHOP_ADMIN_USERNAME and
        SHOP_ADMIN_PASSWORD, unless a user of that name exists."""
        admin = self.config.get("ADMIN") or {}
        if not admin.get("USERNAME"):
            return
        if self._find_by_username(admin["USERNAME"]) is not None:
            return
        fields = load(RegistrationSchema, {
            "username": admin["USERNAME"], "email": admin.get("EMAIL"),
            "password": admin["PASSWORD"]}, "Invalid admin account settings")
        try:
            user = self._create_user(fields, ADMIN)
        except Conflict:
            return  # another instance created it at the same moment
        self.db.session.commit()
        log.info("created admin account %r (id %s)", user.username, user.id)

    def _find_by_username(self, username):
        return self.db.session.scalar(
            select(User).where(func.lower(User.username) == username.lower()))

    def _create_user(self, fields, role):
        """The new user, inserted but not committed: the caller commits it
        with whatever else belongs to the same change."""
        taken = Conflict(f"The username {fields['username']!r} is already taken", "username_taken")
        if self._find_by_username(fields["username"]) is not None:
            raise taken
        user = User(
            username=fields["username"], email=fields["email"], role=role,
            password_hash=self.passwords.hash(fields["password"]))
        self.db.session.add(user)
        try:
            self.db.session.flush()
        except IntegrityError:  # registered concurrently since the check above
            self.db.session.rollback()
            raise taken from None
        return user

