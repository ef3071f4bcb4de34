"""Slows down password guessing at the gateway's /login.

After ``MAX_FAILURES`` failed logins in a row for one username from one
client address, that pair is refused (429, Retry-After) for
``LOCKOUT_SECONDS``, doubling with each further lockout up to
``MAX_LOCKOUT_SECONDS``; a success clears it. The key includes the client's
address, so a guesser does not lock the real user out from elsewhere, and
every lockout ends. The state is in memory, per gateway process: with N
gateway instances a guesser gets N times the attempts.
"""
import math
import time
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from common.errors import TooManyRequests

MAX_FAILURES = 5
LOCKOUT_SECONDS = 30
MAX_LOCKOUT_SECONDS = 15 * 60
MAX_TRACKED = 100_000  # bounds the memory a flood of usernames can take


@dataclass
class _Record:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0


class LoginAttempts:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.records = {}

    def check(self, username, client):
        record = self.records.get(self._key(username, client))
        wait = record.locked_until - self.clock() if record else 0
        if wait > 0:
            raise TooManyRequests(
                "Too many failed logins; try again later", math.ceil(wait), "login_throttled")

    def failed(self, username, client):
        if len(self.records) >= MAX_TRACKED:
            self.records.clear()
        record = self.records.setdefault(self._key(username, client), _Record())
        record.failures += 1
        if record.failures >= MAX_FAILURES:
            lockout = min(LOCKOUT_SECONDS * 2 ** record.lockouts, MAX_LOCKOUT_SECONDS)
            record.locked_until = self.clock() + lockout
            record.lockouts += 1
            record.failures = 0

    def succeeded(self, username, client):
        self.records.pop(self._key(username, client), None)

    @staticmethod
    def _key(username, client):
        return username.lower(), client


class LoginThrottle(DependencyProvider):
    def setup(self):
        self.attempts = LoginAttempts()

    def get_dependency(self, worker_ctx):
        return self.attempts
