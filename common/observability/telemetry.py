"""Logs, metrics and traces for every worker of a service: ``telemetry = Telemetry()``.

For each worker it marks the log context (common.observability.logs), starts the
entrypoint's span (common.observability.tracing), and when the worker ends counts and times
the call (common.observability.metrics) and logs one line: what ran, how it ended, how
long it took. A domain service serves its metrics on ``METRICS.PORTS.<name>``.

Business counters and histograms are declared with the dependency and used
from the worker::

    telemetry = Telemetry(counters={
        "orders": ("shop_orders", "Orders, by the status they entered", ["status"])})
    ...
    self.telemetry.orders.labels(status="paid").inc()
"""
import logging
import time
from types import SimpleNamespace

import nameko_sqlalchemy
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Response

from common.observability.logs import bind_worker, register_service, unbind_worker
from common.observability.metrics import ServiceMetrics
from common.observability.tracing import ServiceTracer, SpanKind

log = logging.getLogger("shop.calls")

ENTRYPOINT_KINDS = ((HttpRequestHandler, "http"), (Rpc, "rpc"), (EventHandler, "event"),
                    (Timer, "timer"))
SPAN_KINDS = {"http": SpanKind.SERVER, "rpc": SpanKind.SERVER, "event": SpanKind.CONSUMER}


def entrypoint_kind(entrypoint):
    for cls, kind in ENTRYPOINT_KINDS:
        if isinstance(entrypoint, cls):
            return kind
    return "other"


def telemetry_of(container):
    """The container's Telemetry dependency, or None if the service has none."""
    for dependency in container.dependencies:
        if isinstance(dependency, Telemetry):
            return dependency
    return None


NO_TRACER = ServiceTracer("", {})  # makes no spans


def tracer_of(container):
    """The container's tracer; one that makes no spans if it has no Telemetry."""
    telemetry = telemetry_of(container)
    return telemetry.tracer if telemetry is not None else NO_TRACER


def http_status(result, exc):
    if exc is not None:
        return getattr(exc, "status", None) or getattr(exc, "code", None) or 500
    if isinstance(result, Response):
        return result.status_code
    if isinstance(result, tuple) and isinstance(result[0], int):
        return result[0]
    return 200


class Telemetry(DependencyProvider):
    def __init__(self, counters=None, histograms=None):
        self.counter_specs = counters or {}
        self.histogram_specs = histograms or {}

    def setup(self):
        name = self.container.service_name
        register_service(name)
        self.metrics = ServiceMetrics(name)
        self.business_metrics = {
            **{attribute: self.metrics.counter(*spec)
               for attribute, spec in self.counter_specs.items()},
            **{attribute: self.metrics.histogram(*spec)
               for attribute, spec in self.histogram_specs.items()}}
        self.tracer = ServiceTracer(name, self.container.config.get("TRACING") or {})
        self.workers = {}
        self.metrics_port = None

    def start(self):
        settings = self.container.config.get("METRICS") or {}
        port = (settings.get("PORTS") or {}).get(self.container.service_name)
        if port is not None:
            self.metrics_port = self.metrics.serve(settings.get("HOST", "127.0.0.1"), int(port))

    def stop(self):
        self.metrics.stop()
        self.tracer.shutdown()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return SimpleNamespace(exposition=self.metrics.exposition, **self.business_metrics)

    def worker_setup(self, worker_ctx):
        bind_worker(worker_ctx)
        entrypoint = worker_ctx.entrypoint
        kind = entrypoint_kind(entrypoint)
        if self.tracer.enabled:
            self.tracer.start_worker_span(
                worker_ctx, f"{kind} {worker_ctx.service_name}.{entrypoint.method_name}",
                SPAN_KINDS.get(kind, SpanKind.INTERNAL), span_attributes(kind, entrypoint))
        self.workers[worker_ctx] = (time.perf_counter(), kind)

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        if worker_ctx not in self.workers:  # another dependency's worker_setup failed first
            return
        started, kind = self.workers.pop(worker_ctx)
        seconds = time.perf_counter() - started
        exc = exc_info[1] if exc_info else None
        expected = exc is not None and isinstance(exc, worker_ctx.entrypoint.expected_exceptions)
        outcome = "ok" if exc is None else "refused" if expected else "error"
        method = worker_ctx.entrypoint.method_name
        fields = {"kind": kind, "outcome": outcome, "duration_ms": round(seconds * 1000, 1)}
        what = f"{kind} {outcome}"
        if kind == "http":
            fields["status"] = http_status(result, exc)
            what = f"{worker_ctx.entrypoint.method} {worker_ctx.entrypoint.url} {fields['status']}"
        self.metrics.observe_call(method, kind, outcome, seconds,
                                  type(exc).__name__ if exc is not None else None,
                                  fields.get("status"))
        self.tracer.end_worker_span(worker_ctx, exc, expected, {
            "http.response.status_code": fields["status"]} if kind == "http" else None)
        # timers tick all day: their lines only at DEBUG
        level = logging.DEBUG if kind == "timer" and exc is None else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s in %.1f ms", what, seconds * 1000, extra=fields)

    def worker_teardown(self, worker_ctx):
        unbind_worker()


def span_attributes(kind, entrypoint):
    if kind == "http":
        return {"http.request.method": entrypoint.method, "http.route": entrypoint.url}
    if kind == "rpc":
        return {"rpc.system": "nameko", "rpc.method": entrypoint.method_name}
    if kind == "event":
        return {"messaging.system": "rabbitmq",
                "messaging.destination.name": f"{entrypoint.source_service}.{entrypoint.event_type}"}
    return {}


class DatabaseGauges(DependencyProvider):
    """Gauges a service counts in its own database when Prometheus scrapes.
    A subclass names them (``documentation``: ``{name: help}``) and reads
    them (``read(session)``: ``{name: value}``), in a session of its own.
    Every instance of the service reports the same figures."""

    documentation = {}

    def start(self):
        telemetry = telemetry_of(self.container)
        if telemetry is None:
            return
        # the service's database dependency (common.data.db.Database)
        [self.database] = [dependency for dependency in self.container.dependencies
                           if isinstance(dependency, nameko_sqlalchemy.Database)]
        telemetry.metrics.read_at_scrape(self._read, self.documentation)

    def _read(self):
        with self.database.Session() as session:
            return self.read(session)

    def read(self, session):
        raise NotImplementedError
