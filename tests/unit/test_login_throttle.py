"""Failed logins: refused for a while after five in a row, per username and
client, with lockouts that double and always end."""
import pytest

from common.errors import TooManyRequests
from gateway.throttle import LoginAttempts


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def attempts(clock):
    return LoginAttempts(clock)


def fail(attempts, times, username="alice", client="10.0.0.1"):
    for _ in range(times):
        attempts.check(username, client)
        attempts.failed(username, client)


def test_five_failures_lock_the_pair_out_for_30_seconds(attempts, clock):
    fail(attempts, 5)
    with pytest.raises(TooManyRequests) as refused:
        attempts.check("Alice", "10.0.0.1")  # usernames are case-insensitive
    assert refused.value.retry_after == 30 and refused.value.status == 429
    clock.now += 30
    attempts.check("alice", "10.0.0.1")


def test_another_client_or_user_is_not_locked_out(attempts):
    fail(attempts, 5)
    attempts.check("alice", "10.0.0.2")
    attempts.check("bob", "10.0.0.1")


def test_lockouts_double_and_a_success_clears_them(attempts, clock):
    fail(attempts, 5)
    clock.now += 30
    fail(attempts, 5)
    with pytest.raises(TooManyRequests) as refused:
        attempts.check("alice", "10.0.0.1")
    assert refused.value.retry_after == 60
    clock.now += 60
    attempts.succeeded("alice", "10.0.0.1")
    fail(attempts, 4)
    attempts.check("alice", "10.0.0.1")
