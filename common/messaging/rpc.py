"""RPC between services that cannot hang: a timeout on every call and a
circuit breaker per downstream service.

nameko's ``RpcProxy`` waits for a reply forever. ``ServiceRpc("products")`` is
the same proxy with:

- a timeout (``RPC.TIMEOUT_SECONDS``): the call raises
  :class:`ServiceUnavailable` (503) instead of waiting; the request message
  expires in the queue at the same time, so a service that comes back later
  does not run a request its caller has given up on;
- a circuit breaker (pybreaker) per downstream service and process: after
  ``RPC.BREAKER_FAILURES`` calls in a row that timed out, found no running
  service or could not reach the broker, calls fail at once with ServiceUnavailable for
  ``RPC.BREAKER_RESET_SECONDS``; then one trial call decides whether it
  closes again.

An error the downstream service answers (a ShopError, such as NotFound) is an
answer, not a failure: it passes through and does not count.

With tracing on, each call is a client span, the parent of the callee's.
"""
import eventlet
from amqp.exceptions import MessageNacked
from nameko.exceptions import UnknownService
from nameko.rpc import MethodProxy, ReplyListener, RpcProxy
from pybreaker import (
    STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker, CircuitBreakerError, CircuitBreakerListener)

from common.errors import ServiceUnavailable, ShopError
from common.messaging.consumers import BROKER_ERRORS, ShopQueueConsumer
from common.messaging.publisher import PooledPublisher
from common.observability.telemetry import telemetry_of, tracer_of
from common.observability.tracing import SpanKind


class _Unanswered(Exception):
    """A call that got no answer; counted by the breaker.
    ``args``: the message and the error code the client gets."""


class ShopReplyListener(ReplyListener):
    """nameko's ReplyListener, on an exclusive, transient reply queue.

    nameko declares it durable: on a cluster, once the node that holds it
    dies, declaring it again on another node fails (404, "home node ... is
    down") until that node is back, and the caller gets no replies. An
    exclusive queue goes with its connection, and the proxy declares it
    afresh wherever it reconnects."""

    queue_consumer = ShopQueueConsumer()

    def setup(self):
        super().setup()
        self.queue.durable = False
        self.queue.exclusive = True


class ServiceBreaker(CircuitBreaker):
    """pybreaker's breaker, letting calls run side by side while it is closed.

    pybreaker holds its lock for the whole of every call: under eventlet, each
    green thread calling the same service waited for the one before it, so a
    process had one call in flight per service, and during a broker restart
    each waited out the timeouts of all those ahead of it (15 s and more for
    a 3 s timeout, make chaos showed). Only the half-open state's trial call
    keeps the lock, so that one call decides, as pybreaker means. The state's
    bookkeeping does no I/O, so green threads cannot interleave inside it."""

    def call(self, func, *args, **kwargs):
        if self.current_state == STATE_HALF_OPEN:
            return super().call(func, *args, **kwargs)
        return self.state.call(func, *args, **kwargs)


class ShopMethodProxy(MethodProxy):
    """nameko's MethodProxy, publishing through common.messaging.publisher's pool."""

    publisher_cls = PooledPublisher


class ServiceRpc(RpcProxy):
    rpc_reply_listener = ShopReplyListener()

    def setup(self):
        settings = self.container.config["RPC"]
        self.timeout = settings["TIMEOUT_SECONDS"]
        # in seconds: kombu writes the milliseconds the broker wants (nameko
        # passes the option through, though its docs speak of milliseconds)
        self.options["expiration"] = self.timeout
        # Every request waits for the broker's confirm (nameko's default): it
        # tells a service that is not running (UnknownService) from a slow
        # one, and a quorum queue whose leader has just died on a cluster
        # takes a confirmed message over to the new leader, whereas an
        # unconfirmed one can be dropped, and every later one sent on the
        # same channel with it (make cluster-test showed both).
        self.breaker = ServiceBreaker(
            fail_max=settings["BREAKER_FAILURES"],
            reset_timeout=settings["BREAKER_RESET_SECONDS"],
            exclude=[ShopError], name=self.target_service,
            # the call that trips the breaker reports its own failure
            throw_new_error_on_trip=False)
        super().setup()

    def start(self):
        self.tracer = tracer_of(self.container)
        telemetry = telemetry_of(self.container)
        if telemetry is not None:
            self.breaker.add_listener(BreakerGauge(telemetry.metrics.breaker_open.labels(
                service=self.container.service_name, target=self.target_service)))
        super().start()

    def get_dependency(self, worker_ctx):
        return GuardedServiceProxy(self, worker_ctx)


class BreakerGauge(CircuitBreakerListener):
    """``shop_circuit_breaker_open``: 1 while the breaker is open."""

    def __init__(self, gauge):
        self.gauge = gauge
        gauge.set(0)

    def state_change(self, breaker, old, new):
        self.gauge.set(1 if new.name == STATE_OPEN else 0)


class GuardedServiceProxy:
    """``self.products.get(1)``: the call, under the timeout and the breaker."""

    def __init__(self, provider, worker_ctx):
        self._provider = provider
        self._worker_ctx = worker_ctx

    def __getattr__(self, method_name):
        provider = self._provider
        target = provider.target_service
        method = ShopMethodProxy(self._worker_ctx, target, method_name,
                                 provider.rpc_reply_listener, **provider.options)

        def call(*args, **kwargs):
            try:
                with self._provider.tracer.outgoing(
                        self._worker_ctx, f"rpc call {target}.{method_name}", SpanKind.CLIENT,
                        {"rpc.system": "nameko", "rpc.service": target,
                         "rpc.method": method_name}):
                    return self._provider.breaker.call(self._answer, method, args, kwargs)
            except CircuitBreakerError:
                raise ServiceUnavailable(
                    f"The {target} service is failing; try again shortly", "circuit_open") from None
            except _Unanswered as exc:
                raise ServiceUnavailable(*exc.args) from None

        return call

    def _answer(self, method, args, kwargs):
        provider = self._provider
        target, timeout = provider.target_service, provider.timeout
        try:
            with eventlet.Timeout(timeout, _Unanswered(
                    f"The {target} service did not answer within {timeout:g} s",
                    "service_timeout")):
                provider.rpc_reply_listener.queue_consumer.wait_until_consuming()
                result = method(*args, **kwargs)
        except UnknownService:
            raise _Unanswered(
                f"The {target} service is not running", "service_unavailable") from None
        except BROKER_ERRORS:  # the request could not be sent
            raise _Unanswered(
                "The message broker is unreachable", "broker_unavailable") from None
        except MessageNacked:  # nor taken, on each channel the retry policy tried
            raise _Unanswered(
                "The message broker did not take the request", "broker_unavailable") from None
        return result
