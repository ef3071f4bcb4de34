"""Prometheus metrics, one registry per service container.

Every service counts its entrypoints' calls by outcome and times them, and
reports its process (memory, CPU); the shop's own extensions add theirs (the
outbox's backlog, the event handlers' retries and dead letters, the circuit
breakers' state), and a service declares its business counters and
histograms with :class:`common.observability.telemetry.Telemetry`. A domain service serves
its registry on its own port (``METRICS.PORTS``); the gateway at
``GET /metrics``. The alert rules and the dashboard in ``deploy/`` query
these names; ``tests/e2e/test_prometheus.py`` keeps them in step.

A registry per container, not prometheus_client's global one, so that
services sharing a process (as in the tests) each report only their own.
"""
import logging

from prometheus_client import (
    CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics,
    start_http_server)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from common.build import build_info

log = logging.getLogger(__name__)

# a *_created series per counter doubles the pages for nothing a dashboard uses
disable_created_metrics()

__all__ = ["ServiceMetrics", "CONTENT_TYPE_LATEST"]

# the latency histograms' buckets, in seconds
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


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
            buckets=LATENCY_BUCKETS)
        self.errors = Counter(
            "shop_entrypoint_errors", "Errors raised by entrypoints, by type",
            ["service", "entrypoint", "error"], registry=self.registry)
        self.event_failures = Counter(
            "shop_event_failures", "Event deliveries that failed, by what became of "
            "them: retried later, or dead-lettered", ["service", "queue", "outcome"],
            registry=self.registry)
        self.http_responses = Counter(
            "shop_http_responses", "HTTP answers, by route and status code",
            ["service", "entrypoint", "code"], registry=self.registry)
        self.breaker_open = Gauge(
            "shop_circuit_breaker_open", "1 while the circuit breaker in front of a "
            "downstream service is open (its calls fail at once), else 0",
            ["service", "target"], registry=self.registry)
        build = build_info()
        Gauge("shop_build_info", "1, labelled with the version and git revision the service "
              "runs", ["service", "version", "revision"], registry=self.registry).labels(
            service=service_name, version=build["version"], revision=build["revision"]).set(1)
        # resident memory, CPU seconds, open files: process_* (one process per service)
        ProcessCollector(registry=self.registry)
        self.server = None

    def counter(self, name, documentation, labels=()):
        return Counter(name, documentation, list(labels), registry=self.registry)

    def histogram(self, name, documentation, labels=()):
        return Histogram(name, documentation, list(labels), registry=self.registry,
                         buckets=LATENCY_BUCKETS)

    def read_at_scrape(self, read, documentation):
        """Gauges whose values ``read()`` returns, ``{name: value}``, when
        Prometheus scrapes: a count in the database, a queue's depth.
        ``documentation``: ``{name: help text}``."""
        self.registry.register(ScrapeTimeGauges(self.service_name, read, documentation))

    def observe_call(self, entrypoint, kind, outcome, seconds, error=None, http_status=None):
        labels = {"service": self.service_name, "entrypoint": entrypoint}
        self.calls.labels(kind=kind, outcome=outcome, **labels).inc()
        self.seconds.labels(kind=kind, **labels).observe(seconds)
        if error is not None:
            self.errors.labels(error=error, **labels).inc()
        if http_status is not None:
            self.http_responses.labels(code=str(http_status), **labels).inc()

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


class ScrapeTimeGauges:
    """A collector of gauges read when Prometheus scrapes. When the read
    fails (the database or the broker is down) the page leaves these gauges
    out instead of failing whole: the service's other metrics, and whether
    it is up, still tell what they tell."""

    def __init__(self, service_name, read, documentation):
        self.service_name = service_name
        self.read = read
        self.documentation = documentation

    def collect(self):
        try:
            values = self.read()
        except Exception as exc:
            log.warning("%s left out of the metrics: %s: %s", ", ".join(self.documentation),
                        type(exc).__name__, exc)
            return
        for name, documentation in self.documentation.items():
            gauge = GaugeMetricFamily(name, documentation, labels=["service"])
            gauge.add_metric([self.service_name], values[name])
            yield gauge
