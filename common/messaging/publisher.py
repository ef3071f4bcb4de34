"""Publishing through kombu's pool of producers, looked up once per process.

nameko's ``Publisher.publish`` builds a kombu ``Connection`` for every
message, only to find the pool of producers for its settings: it parses the
broker's URI and hashes the connection's settings each time. The shop
publishes at least four messages per order (the RPC request and its reply,
the reservation's request and its answer), so ``PooledPublisher`` looks the
pool up once per broker URI and confirm mode and keeps it. It takes nameko's
options, with their defaults, and publishes through the same pool of
producers that nameko would use for them. A publish with confirms goes out
on the process's shared confirm channel instead (common.messaging.confirms).
"""
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.pools import producers
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS

from common.messaging.confirms import confirmed_channel

_pools = {}


def producer_pool(amqp_uri, use_confirms, ssl=None, login_method=None):
    """kombu's pool of producers for these settings (nameko's ``get_producer``'s)."""
    key = (amqp_uri, use_confirms, repr(ssl), login_method)
    pool = _pools.get(key)
    if pool is None:
        connection = Connection(
            amqp_uri, ssl=ssl, login_method=login_method,
            transport_options={**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": use_confirms})
        pool = _pools[key] = producers[connection]
    return pool


class PooledPublisher(Publisher):
    """nameko's Publisher, with its pool of producers looked up once."""

    def publish(self, payload, **kwargs):
        # as nameko merges them: headers given now win over the publisher's,
        # and the publish-time options over the publisher's own
        given = dict(self.publish_kwargs)
        headers = {**given.pop("headers", {}), **kwargs.pop("headers", {}),
                   **kwargs.pop("extra_headers", {})}
        use_confirms = kwargs.pop("use_confirms", self.use_confirms)
        declare = [*self.declare, *kwargs.pop("declare", ())]
        options = {
            "delivery_mode": self.delivery_mode, "mandatory": self.mandatory,
            "priority": self.priority, "expiration": self.expiration,
            "serializer": self.serializer, "compression": self.compression,
            "retry": self.retry, "retry_policy": self.retry_policy, **given, **kwargs}
        if use_confirms:
            shared = confirmed_channel(self.amqp_uri, self.ssl, self.login_method)
            if shared is not None:
                shared.publish(payload, headers=headers, declare=declare, **options)
                return
        pool = producer_pool(self.amqp_uri, use_confirms, self.ssl, self.login_method)
        with pool.acquire(block=True) as producer:
            try:
                producer.publish(payload, headers=headers, declare=declare, **options)
            except ChannelError as exc:
                if "NO_ROUTE" in str(exc):
                    raise UndeliverableMessage() from None
                raise
