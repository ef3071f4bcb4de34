"""The users service's logic, with worker_factory: a real database, a fast
argon2, and events caught by the mock that replaces the outbox."""
import argon2
import pytest
from nameko.testing.services import worker_factory

from common.errors import Conflict, InvalidInput, NotFound, Unauthorized
from common.web.tokens import TokenCodec
from users.models import User
from users.passwords import Passwords
from users.service import UsersService


@pytest.fixture
def passwords():
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return Passwords(hasher, hasher.hash("dummy"))


@pytest.fixture
def codec():
    return TokenCodec("a-test-secret-that-is-long-enough-for-hs256", 900)


@pytest.fixture
def service(db, passwords, codec):
    return worker_factory(UsersService, db=db("users"), passwords=passwords, tokens=codec)


def register_alice(service):
    return service.register("Alice", "alice@example.com", "wonderland")


def test_register_stores_a_hash_and_answers_without_it(service):
    user = register_alice(service)
    assert user == {"id": user["id"], "username": "Alice", "email": "alice@example.com",
                    "role": "customer"}
    stored = service.db.session.get(User, user["id"])
    assert stored.password_hash.startswith("$argon2")
    assert "wonderland" not in stored.password_hash


def test_register_publishes_user_registered(service):
    user = register_alice(service)
    service.outbox.add.assert_called_once_with("user_registered", user)


@pytest.mark.parametrize("username", ["Alice", "alice", "ALICE"])
def test_usernames_are_unique_whatever_their_case(service, username):
    register_alice(service)
    with pytest.raises(Conflict) as error:
        service.register(username, "other@example.com", "password2")
    assert error.value.code == "username_taken"


@pytest.mark.parametrize("username, email, password, field", [
    ("al", "alice@example.com", "wonderland", "username"),
    ("alice smith", "alice@example.com", "wonderland", "username"),
    ("alice", "not-an-email", "wonderland", "email"),
    ("alice", "alice@example.com", "short", "password"),
    ("alice", "alice@example.com", None, "password"),
])
def test_register_refuses_invalid_fields(service, username, email, password, field):
    with pytest.raises(InvalidInput) as error:
        service.register(username, email, password)
    assert list(error.value.details) == [field]
    service.outbox.add.assert_not_called()


def test_authenticate_answers_a_token_for_the_user(service, codec):
    user = register_alice(service)
    answer = service.authenticate("alice", "wonderland")
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 900
    claims = codec.verify(answer["access_token"])
    assert (claims.user_id, claims.role) == (user["id"], "customer")


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(service):
    register_alice(service)
    with pytest.raises(Unauthorized) as wrong_password:
        service.authenticate("alice", "not-the-password")
    with pytest.raises(Unauthorized) as unknown_user:
        service.authenticate("bob", "wonderland")
    assert wrong_password.value.to_dict() == unknown_user.value.to_dict()


def test_get_user_and_get_users(service):
    alice = register_alice(service)
    bob = service.register("bob", "bob@example.com", "builder123")
    assert service.get_user(bob["id"]) == bob
    assert service.get_users([bob["id"], alice["id"], 999]) == [alice, bob]
    with pytest.raises(NotFound):
        service.get_user(999)
    with pytest.raises(InvalidInput):
        service.get_user("1; drop table users")


def test_ensure_admin_creates_the_configured_admin_once(service):
    service.config = {"ADMIN": {"USERNAME": "root", "PASSWORD": "root-password",
                                "EMAIL": "root@example.com"}}
    service.ensure_admin()
    service.ensure_admin()
    admins = service.db.session.query(User).filter_by(role="admin").all()
    assert [admin.username for admin in admins] == ["root"]
    assert service.authenticate("root", "root-password")["access_token"]


def test_ensure_admin_does_nothing_when_not_configured(service):
    service.config = {"ADMIN": {"USERNAME": None, "PASSWORD": None}}
    service.ensure_admin()
    assert service.db.session.query(User).count() == 0
