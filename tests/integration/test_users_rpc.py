"""The users service in a real container, called over RabbitMQ."""
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter

from common.errors import Conflict, InvalidInput, Unauthorized
from common.web.tokens import TokenCodec
from tests.helpers import event_recorder, waiting_for_event
from users.service import UsersService

pytestmark = pytest.mark.integration


@pytest.fixture
def users(container_factory, shop_config):
    container_factory(UsersService, shop_config).start()
    with ServiceRpcProxy("users", shop_config, timeout=10) as proxy:
        yield proxy


def test_register_over_rpc_publishes_user_registered(container_factory, shop_config, users):
    Recorder, received = event_recorder(("users", "user_registered"))
    recorder = container_factory(Recorder, shop_config)
    recorder.start()

    with waiting_for_event(recorder, "user_registered"):
        user = users.register("carol", "carol@example.com", "carol-password")

    [(event_type, envelope)] = received
    assert envelope["source"] == "users"
    assert envelope["data"] == user == {
        "id": user["id"], "username": "carol", "email": "carol@example.com", "role": "customer"}


def test_a_registration_made_before_any_consumer_ran_reaches_it_when_it_starts(
        container_factory, shop_config, users):
    """The event waits in the users service's outbox until a queue is bound
    for it, where nameko's dispatcher would have dropped it."""
    user = users.register("carol", "carol@example.com", "carol-password")
    Recorder, received = event_recorder(("users", "user_registered"))
    recorder = container_factory(Recorder, shop_config)
    with waiting_for_event(recorder, "user_registered", timeout=20):
        recorder.start()
    assert [envelope["data"] for _, envelope in received] == [user]


def test_a_failed_registration_publishes_nothing(container_factory, shop_config, users):
    Recorder, received = event_recorder(("users", "user_registered"))
    recorder = container_factory(Recorder, shop_config)
    recorder.start()
    with waiting_for_event(recorder, "user_registered"):
        users.register("carol", "carol@example.com", "carol-password")
    with pytest.raises(Conflict):
        users.register("Carol", "other@example.com", "carol-password")
    with waiting_for_event(recorder, "user_registered"):
        users.register("dave", "dave@example.com", "dave-password")
    assert [envelope["data"]["username"] for _, envelope in received] == ["carol", "dave"]


def test_service_errors_arrive_as_the_shared_error_classes(users):
    users.register("carol", "carol@example.com", "carol-password")
    with pytest.raises(Conflict) as taken:
        users.register("CAROL", "other@example.com", "carol-password")
    assert taken.value.code == "username_taken"
    with pytest.raises(InvalidInput) as invalid:
        users.register("dave", "dave@", "pw")
    assert set(invalid.value.details) == {"email", "password"}
    with pytest.raises(Unauthorized):
        users.authenticate("carol", "wrong-password")


def test_authenticate_issues_a_token_the_shared_secret_verifies(users, shop_config):
    user = users.register("carol", "carol@example.com", "carol-password")
    answer = users.authenticate("Carol", "carol-password")
    jwt_settings = shop_config["JWT"]
    claims = TokenCodec(jwt_settings["SECRET"], jwt_settings["LIFETIME_SECONDS"]).verify(
        answer["access_token"])
    assert claims.user_id == user["id"] and claims.role == "customer"


def test_the_configured_admin_is_created_at_start(container_factory, shop_config):
    shop_config["ADMIN"] = {"USERNAME": "boss", "PASSWORD": "boss-password",
                            "EMAIL": "boss@example.com"}
    container = container_factory(UsersService, shop_config)
    with entrypoint_waiter(container, "ensure_admin", timeout=10):
        container.start()
    with ServiceRpcProxy("users", shop_config, timeout=10) as users:
        token = users.authenticate("boss", "boss-password")["access_token"]
    codec = TokenCodec(shop_config["JWT"]["SECRET"], 60)
    assert codec.verify(token).role == "admin"
