"""Prometheus metrics, one registry per service container.

Every service counts its entrypoints' calls by outcome and times them; the
shop's own extensions add theirs (the outbox's backlog, the event handlers'
retries and dead letters), and a service declares its business counters with
:class:`common.telemetry.Telemetry`. A domain service serves its registry on
its own port (``METRICS.PORTS``); the gateway at ``GET /metrics``.

A registry per container, not prometheus_client's global one, so that
services sharing a process (as in the tests) each report only their own.
"""
import logging

from prometheus_client import (
    CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

# a *_created series per counter doubles the pages for nothing a dashboard uses
disable_created_metrics()

__all__ = ["ServiceMetrics", "CONTENT_TYPE_LATEST"]


class ServiceMetrics:
    def __init__(self, service_name):
        self.service_name = service_name
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "shop_entrypoint_calls", "Entrypoint calls, by outcome: ok, refused "
            "(an expected error such as not found) or error (a crash)",
            ["service", "entrypoint", "kind", "outcome"], registry=self.registry)
        self.seconds = Histogram(
            "shop_entrypoint_duration_seconds", "Time an entrypoint's worker took",
            ["service", "entrypoint", "kind"], registry=self.registry,
            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.errors = Counter(
            "shop_entrypoint_errors", "Errors raised by entrypoints, by type",
            ["service", "entrypoint", "error"], registry=self.registry)
        self.event_failures = Counter(
            "shop_event_failures", "Event deliveries that failed, by what became of "
            "them: retried later, or dead-lettered", ["service", "queue", "outcome"],
            registry=self.registry)
        self.server = None

    def counter(self, name, documentation, labels=()):
        return Counter(name, documentation, list(labels), registry=self.registry)

    def gauge(self, name, documentation, labels=()):
        return Gauge(name, documentation, list(labels), registry=self.registry)

    def observe_call(self, entrypoint, kind, outcome, seconds, error=None):
        labels = {"service": self.service_name, "entrypoint": entrypoint}
        self.calls.labels(kind=kind, outcome=outcome, **labels).inc()
        self.seconds.labels(kind=kind, **labels).observe(seconds)
        if error is not None:
            self.errors.labels(error=error, **labels).inc()

    def exposition(self):
        return generate_latest(self.registry)

    def serve(self, host, port):
        """Serve the registry at ``http://host:port/metrics``; port 0 picks a
        free one. Returns the port."""
        self.server, _thread = start_http_server(port, addr=host, registry=self.registry)
        port = self.server.server_address[1]
        log.info("metrics at http://%s:%s/metrics", host, port)
        return port

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
