"""The queue consumer every shop entrypoint and RPC proxy shares.

Before it consumes, it declares the quorum queues of its entrypoints itself
(common.queues.check_declared), so that one with the wrong type stops the
service with a clear error.

nameko's QueueConsumer, stopped before its consumers are ready (a SIGTERM
while a service starts), signals "last provider gone" once for each of its
providers: the second signal raises in that provider's stop, and the
container's stop never ends. A service has several providers on it (its RPC
queue, its reply queue, each event handler), so this one signals once, when
the last provider has gone.
"""
from nameko.messaging import QueueConsumer

from common.queues import check_declared, is_quorum


class ShopQueueConsumer(QueueConsumer):
    def start(self):
        # before consuming: a queue of the wrong type stops the service with
        # one clear line, not a channel error in the consumer's thread
        if not self._starting:
            check_declared(self.connection, [
                provider.queue for provider in self._providers if is_quorum(provider.queue)])
        super().start()

    def unregister_provider(self, provider):
        if self._consumers_ready.ready():
            super().unregister_provider(provider)
            return
        self._providers.discard(provider)
        if not self._providers and not self._last_provider_unregistered.ready():
            self._last_provider_unregistered.send()
