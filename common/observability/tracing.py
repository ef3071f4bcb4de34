"""OpenTelemetry traces across services, carried in nameko's context data.

Each container has its own TracerProvider (its ``service.name``). The trace
context travels as W3C ``traceparent``/``tracestate`` in the worker's context
data, which nameko sends as ``nameko.traceparent`` headers with every RPC
request and event (and which the outbox stores with each row): the span of
an entrypoint is the child of the caller's span named there, and whatever
the worker sends out names the worker's span, or the span of that one RPC
call or event, as its parent.

Spans are exported over OTLP/HTTP (batched) to ``TRACING.OTLP_ENDPOINT`` when
it is set, and not made at all when it is not; ``TRACING.EXPORTER: memory``
keeps them in the process instead (for tests).
"""
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common.errors import ShopError

PROPAGATOR = TraceContextTextMapPropagator()
TRACE_KEYS = ("traceparent", "tracestate")


class ServiceTracer:
    """Spans of one service; ``exporter`` is the in-memory one with ``memory``."""

    def __init__(self, service_name, settings):
        self.exporter = None
        self.worker_spans = {}
        name = settings.get("EXPORTER") or ("otlp" if settings.get("OTLP_ENDPOINT") else "none")
        if name == "none":
            self.provider = None
            return
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if name == "memory":
            self.exporter = InMemorySpanExporter()
            self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        else:
            # imported only when used: it pulls in protobuf and requests
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            self.provider.add_span_processor(BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{settings['OTLP_ENDPOINT'].rstrip('/')}/v1/traces")))
        self.tracer = self.provider.get_tracer("shop")

    @property
    def enabled(self):
        return self.provider is not None

    def shutdown(self):
        if self.enabled:
            self.provider.shutdown()

    def start_worker_span(self, worker_ctx, name, kind, attributes):
        """The span of an entrypoint's worker, child of the caller's span
        named in the worker's context data; from now on that data names this span.
        Only when ``enabled``."""
        parent = PROPAGATOR.extract(worker_ctx.data)
        span = self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        self.worker_spans[worker_ctx] = span
        _name_parent(worker_ctx, span)

    def end_worker_span(self, worker_ctx, exc=None, expected=False, attributes=None):
        span = self.worker_spans.pop(worker_ctx, None)
        if span is not None:
            span.set_attributes(attributes or {})
            end_span(span, exc, expected)

    @contextmanager
    def outgoing(self, worker_ctx, name, kind, attributes=None):
        """A span for one RPC call or event the worker sends: while it lasts,
        the worker's context data names it as the parent."""
        worker_span = self.worker_spans.get(worker_ctx)
        if worker_span is None:
            yield None
            return
        span = self.tracer.start_span(
            name, context=trace.set_span_in_context(worker_span), kind=kind,
            attributes=attributes)
        _name_parent(worker_ctx, span)
        try:
            yield span
        except Exception as exc:
            # an error the other service answered (a ShopError) is an answer
            end_span(span, exc, expected=isinstance(exc, ShopError))
            raise
        else:
            span.end()
        finally:
            # the worker's span again, even if calls made side by side interleaved
            _name_parent(worker_ctx, worker_span)


def _name_parent(worker_ctx, span):
    for key in TRACE_KEYS:
        worker_ctx.data.pop(key, None)
    PROPAGATOR.inject(worker_ctx.data, context=trace.set_span_in_context(span))


def end_span(span, exc=None, expected=False):
    if span is None:
        return
    if exc is not None:
        span.set_attribute("error.type", type(exc).__name__)
        if not expected:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
    span.end()


__all__ = ["ServiceTracer", "SpanKind", "end_span"]
