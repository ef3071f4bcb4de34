"""The queue consumer every shop entrypoint and RPC proxy shares.

Before it consumes, it declares the quorum queues of its entrypoints itself
(common.messaging.queues.check_declared), so that one with the wrong type stops the
service with a clear error.

nameko's QueueConsumer, stopped before its consumers are ready (a SIGTERM
while a service starts), signals "last provider gone" once for each of its
providers: the second signal raises in that provider's stop, and the
container's stop never ends. A service has several providers on it (its RPC
queue, its reply queue, each event handler), so this one signals once, when
the last provider has gone.

Nor does it wait forever for a consumer thread that is reconnecting to a
broker that is away (SIGTERM during a broker outage): stopping waits
``CANCEL_TIMEOUT_SECONDS`` for it, then goes on without it.

And an ack or a requeue on a connection a restarting broker has reset is
logged, not raised: nameko catches amqp's ConnectionError there but not the
socket's, and the error kills the whole service. Nothing is lost: the broker
delivers again what was not acked, and a reply queue goes with its connection.
"""
import logging

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.messaging import QueueConsumer

from common.messaging.queues import check_declared, is_quorum

# how long stopping waits for the consumer's thread, which cannot cancel
# anything while the broker is away
CANCEL_TIMEOUT_SECONDS = 2

log = logging.getLogger(__name__)

# what talking to the broker raises when it cannot be reached
BROKER_ERRORS = (OperationalError, AmqpConnectionError, OSError)


class ShopQueueConsumer(QueueConsumer):
    def ack_message(self, message):
        self._settle(super().ack_message, message)

    def requeue_message(self, message):
        self._settle(super().requeue_message, message)

    @staticmethod
    def _settle(settle, message):
        try:
            settle(message)
        except BROKER_ERRORS as exc:
            log.warning("could not settle a message from %s, the connection is gone: %s",
                        message.delivery_info.get("routing_key"), exc)

    def start(self):
        # before consuming: a queue of the wrong type stops the service with
        # one clear line, not a channel error in the consumer's thread
        if not self._starting:
            check_declared(self.connection, [
                provider.queue for provider in self._providers if is_quorum(provider.queue)])
        super().start()

    def wait_until_consuming(self):
        """Returns once every consumer is set up, its queue declared. A
        process that takes requests as soon as it starts (the gateway's HTTP
        server) may call a service before then, and the broker drops a reply
        sent to a reply queue that is not declared yet."""
        self._consumers_ready.wait()

    def unregister_provider(self, provider):
        if self._consumers_ready.ready():
            try:
                # nameko waits for the consumer's thread to cancel the consumer
                # between two reads; a thread that keeps reconnecting to a
                # broker that is away never gets there
                with eventlet.Timeout(CANCEL_TIMEOUT_SECONDS):
                    super().unregister_provider(provider)
                return
            except eventlet.Timeout:
                log.warning("%s: the consumer was not cancelled within %s s (is the broker "
                            "reachable?); stopping without it", provider, CANCEL_TIMEOUT_SECONDS)
                self._pending_remove_providers.pop(provider, None)
        # a new set, not discard(): the consumer's thread may be iterating
        # over the old one, setting up consumers (get_consumers)
        self._providers = self._providers - {provider}
        if not self._providers and not self._last_provider_unregistered.ready():
            self._last_provider_unregistered.send()

    def stop(self):
        try:
            with eventlet.Timeout(CANCEL_TIMEOUT_SECONDS):
                super().stop()
        except eventlet.Timeout:
            # its thread is still reconnecting: nothing left to consume for
            self.should_stop = True
            self._gt.kill()
