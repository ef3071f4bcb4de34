"""Traces leave the process over OTLP/HTTP when an endpoint is configured:
a real HTTP receiver decodes what the services export."""
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

pytestmark = pytest.mark.e2e


class OtlpReceiver:
    """A minimal OTLP/HTTP trace collector: keeps the spans POSTed to /v1/traces."""

    def __init__(self):
        self.spans = []  # (service.name, span name, trace id)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource_spans in request.resource_spans:
                    service = next(attribute.value.string_value
                                   for attribute in resource_spans.resource.attributes
                                   if attribute.key == "service.name")
                    receiver.spans.extend(
                        (service, span.name, span.trace_id.hex())
                        for scope_spans in resource_spans.scope_spans
                        for span in scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings(otlp):
    """The e2e runner's settings: traces exported to the receiver."""
    return {"TRACING": {"OTLP_ENDPOINT": otlp.url}}


def test_with_an_otlp_endpoint_the_spans_are_exported_to_it(runner, api, otlp):
    api.customer_token(f"c{uuid.uuid4().hex[:8]}")
    runner.stop()  # flushes the batched spans
    exported = {(service, name) for service, name, _ in otlp.spans}
    assert {("gateway", "http gateway.register"), ("gateway", "rpc call users.register"),
            ("users", "rpc users.register"), ("users", "publish users.user_registered"),
            ("gateway", "http gateway.login")} <= exported
    [trace_id] = {trace for service, name, trace in otlp.spans
                  if name.endswith(".register")}
    assert trace_id != "0" * 32
