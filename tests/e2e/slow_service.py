"""A service whose RPC takes as long as asked, for the shutdown tests."""
import eventlet
from nameko.rpc import rpc


class SlowService:
    name = "slow"

    @rpc
    def wait(self, seconds):
        eventlet.sleep(seconds)
        return "done"


class SlowUsers:
    """A users service whose ping takes 0.8 s: the gateway's GET /health,
    which pings every service, then takes as long."""

    name = "users"

    @rpc
    def ping(self):
        eventlet.sleep(0.8)
        return {"service": "users", "database": "ok", "version": "test", "revision": "test"}
