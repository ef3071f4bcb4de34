"""Entrypoints the shop adds to nameko's."""
from nameko.extensions import Entrypoint
from nameko.rpc import rpc as nameko_rpc

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
