"""Entrypoints the shop adds to nameko's."""
from nameko.extensions import Entrypoint
from nameko.rpc import rpc as nameko_rpc
from nameko.timer import Timer
from sqlalchemy import text

from common.errors import ShopError


def rpc(method):
    """nameko's ``@rpc``; a :class:`ShopError` is an answer, not a failure,
    so it is logged as a warning."""
    return nameko_rpc(expected_exceptions=ShopError)(method)


class OnStart(Entrypoint):
    """Runs the decorated method once in a worker when the service starts,
    with every dependency injected (for example to create a first account)."""

    def start(self):
        self.container.spawn_worker(self, (), {})


on_start = OnStart.decorator


class ConfigTimer(Timer):
    """nameko's ``@timer`` with its interval read from a config key at start,
    so tests and deployments can change it."""

    def __init__(self, config_key, **kwargs):
        self.config_key = config_key
        super().__init__(interval=None, **kwargs)

    def setup(self):
        self.interval = float(self.container.config[self.config_key])
        super().setup()


config_timer = ConfigTimer.decorator


def health_check():
    """The ``ping`` RPC method of a service with a ``db``: it answers when the
    service takes work and its database answers; the gateway's
    ``/health/ready`` calls it. Use: ``ping = health_check()`` in the class.
    (A function, not a mixin class: ``nameko run <module>`` would take an
    imported class with an entrypoint for a service.)"""

    @rpc
    def ping(self):
        self.db.session.execute(text("SELECT 1"))
        return {"service": self.name, "database": "ok"}

    return ping
