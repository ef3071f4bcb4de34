"""Password hashing with argon2, off the event loop.

One argon2 hash costs about 150 ms of CPU. Done inline it stalls every other
worker of the process, so it runs in eventlet's thread pool.
"""
import argon2
from eventlet import tpool
from nameko.extensions import DependencyProvider


class Passwords:
    def __init__(self, hasher, dummy_hash):
        self.hasher = hasher
        self.dummy_hash = dummy_hash

    def hash(self, password):
        return tpool.execute(self.hasher.hash, password)

    def verify(self, password_hash, password):
        try:
            return tpool.execute(self.hasher.verify, password_hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

    def verify_nothing(self, password):
        """Spend the time of a real check, so that an unknown username
        answers as slowly as a wrong password."""
        self.verify(self.dummy_hash, password)


class PasswordHasher(DependencyProvider):
    def setup(self):
        hasher = argon2.PasswordHasher()
        self.passwords = Passwords(hasher, hasher.hash("not a password anyone has"))

    def get_dependency(self, worker_ctx):
        return self.passwords
