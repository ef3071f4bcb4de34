"""A service whose RPC takes as long as asked, for the shutdown tests."""
import eventlet
from nameko.rpc import rpc


class SlowService:
    name = "slow"

    @rpc
    def wait(self, seconds):
        eventlet.sleep(seconds)
        return "done"
