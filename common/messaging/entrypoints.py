"""Entrypoints the shop adds to nameko's."""
import logging
import sys

import eventlet

from kombu.entity import TRANSIENT_DELIVERY_MODE
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER, LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY)
from nameko.extensions import Entrypoint
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange
from nameko.timer import Timer
from sqlalchemy import text

from common.build import build_info
from common.data.db import Database, is_database_unavailable
from common.errors import ServiceUnavailable, ShopError
from common.messaging.consumers import BROKER_ERRORS, ShopQueueConsumer
from common.messaging.publisher import PooledPublisher
from common.messaging.queues import quorum

log = logging.getLogger(__name__)


class NamekoContextHeaders:
    """Context data from the ``nameko.``-prefixed headers only.

    nameko makes every header of an incoming message context data, which
    every message the worker sends then carries on: RabbitMQ's ``x-death``
    (with timestamps that the outbox cannot store as JSON) and the retry
    count of the message being retried, which the next service would take
    for its own."""

    def unpack_message_headers(self, message):
        prefix = f"{self.header_prefix}."
        return {key[len(prefix):]: value for key, value in message.headers.items()
                if key.startswith(prefix)}


class ReplyPublisher(PooledPublisher):
    """An RPC reply goes to the caller's exclusive, non-durable reply queue:
    persisting it would write nothing that outlives the caller, and a confirm
    would hold the worker for a round trip that changes nothing (a reply
    lost with the broker leaves the caller to its timeout either way)."""

    use_confirms = False
    delivery_mode = TRANSIENT_DELIVERY_MODE


class ShopResponder(Responder):
    publisher_cls = ReplyPublisher


class ShopRpcConsumer(RpcConsumer):
    """nameko's RpcConsumer, on a quorum queue (common.messaging.queues), replying
    through :class:`ReplyPublisher`."""

    queue_consumer = ShopQueueConsumer()

    def setup(self):
        super().setup()
        quorum(self.queue)

    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = ShopResponder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


# Pauses before running again a worker that the database failed before it
# committed anything: a connection the database dropped (a restart, a
# failover that is over) is replaced at once, and the caller, waiting at
# most RPC.TIMEOUT_SECONDS, gets its answer a little later. A database
# still down after them is answered ServiceUnavailable.
DATABASE_RETRY_DELAYS = (0.1, 0.5)


class ShopRpc(NamekoContextHeaders, Rpc):
    """nameko's RPC entrypoint, replying without a confirm (ReplyPublisher),
    running a worker again when the database failed it before it sent a
    COMMIT, answering ServiceUnavailable when the database cannot be
    reached or when whether the work committed is not known, and
    surviving a broker that goes away while the reply is sent: nameko
    would kill the whole service. The caller times out instead; the request,
    never acked, is delivered again once the broker is back, unless it
    expired (see common.messaging.rpc)."""

    rpc_consumer = ShopRpcConsumer()

    def handle_result(self, message, worker_ctx, result, exc_info):
        result, exc_info = self.retry_after_database_failure(worker_ctx, result, exc_info)
        if exc_info is not None and is_database_unavailable(exc_info[1]):
            # the caller may try again shortly (503 with Retry-After at the
            # gateway), where the database error itself would be a 500
            unavailable = ServiceUnavailable(
                f"The {self.container.service_name} service's database is unavailable; "
                "try again shortly", "database_unavailable")
            exc_info = (ServiceUnavailable, unavailable, exc_info[2])
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except BROKER_ERRORS as exc:
            log.warning("the reply of %s was not sent, the broker is unreachable: %s",
                        worker_ctx.call_id, exc)
            return result, exc_info

    def retry_after_database_failure(self, worker_ctx, result, exc_info):
        """Runs the worker's method again, in the same worker (a new one
        would wait for a free worker while holding this one), while the
        database failed it before any of its sessions sent a COMMIT: the
        database rolled back whatever it had done."""
        if exc_info is None or not is_database_unavailable(exc_info[1]):
            return result, exc_info  # every answer but this failure: nothing to look up
        databases = [provider.dbs[worker_ctx] for provider in self.container.dependencies
                     if isinstance(provider, Database) and worker_ctx in provider.dbs]
        for delay in DATABASE_RETRY_DELAYS:
            if exc_info is None or not is_database_unavailable(exc_info[1]) \
                    or not all(database.nothing_committed() for database in databases):
                break
            log.warning("the database failed %s before it committed (%s); running it again "
                        "in %s s", worker_ctx, exc_info[1].__class__.__name__, delay)
            for database in databases:
                database.start_over()
            eventlet.sleep(delay)
            method = getattr(worker_ctx.service, self.method_name)
            try:
                result, exc_info = method(*worker_ctx.args, **worker_ctx.kwargs), None
            except Exception:
                result, exc_info = None, sys.exc_info()
        return result, exc_info


def rpc(method):
    """``@rpc``; a :class:`ShopError` is an answer, not a failure, so it is
    logged as a warning."""
    return ShopRpc.decorator(expected_exceptions=ShopError)(method)


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

    def stop(self):
        if self.gt is not None:  # None: stopped before it started
            super().stop()


config_timer = ConfigTimer.decorator


def health_check():
    """The ``ping`` RPC method of a service with a ``db``: it answers, with
    the service's version and revision, when the service takes work and its
    database answers; the gateway's
    ``/health/ready`` calls it. Use: ``ping = health_check()`` in the class.
    (A function, not a mixin class: ``nameko run <module>`` would take an
    imported class with an entrypoint for a service.)"""

    @rpc
    def ping(self):
        self.db.session.execute(text("SELECT 1"))
        return {"service": self.name, "database": "ok", **build_info()}

    return ping
