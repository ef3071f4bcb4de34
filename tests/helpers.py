"""Small tools the tests share."""
import contextlib
import os
import shutil
import subprocess
import time

import pytest
import requests

from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter

from common.messaging.events import EnvelopeSchema
from tests.conftest import free_port


def event_recorder(*events):
    """A service class that records the given ``(source, event_type)`` events,
    and the list it records them in as ``(event_type, envelope)``.

    Start it before the events are published: nameko drops an event that no
    queue is bound for yet.
    """
    received = []
    attributes = {"name": "event_recorder"}
    for source, event_type in events:
        def record(self, payload, event_type=event_type):
            EnvelopeSchema().load(payload)  # raises if the envelope is malformed
            received.append((event_type, payload))
        attributes[handler_name(event_type)] = event_handler(source, event_type)(record)
    return type("EventRecorder", (), attributes), received


def handler_name(event_type):
    return f"on_{event_type}"


def waiting_for_event(recorder_container, event_type, timeout=10):
    """Context manager: waits on exit until the recorder has handled one ``event_type``."""
    return entrypoint_waiter(recorder_container, handler_name(event_type), timeout=timeout)


def wait_for(condition, timeout=10):
    """Polls ``condition`` until it is true; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def prometheus_binary(name):
    """The path of ``prometheus`` or ``promtool``. Without Debian's package the
    test is skipped, or fails where SHOP_REQUIRE_PROMETHEUS is set (.ci/run)."""
    path = shutil.which(name)
    if path is None:
        message = f"needs {name} from Debian's prometheus package (apt install prometheus)"
        if os.environ.get("SHOP_REQUIRE_PROMETHEUS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Prometheus:
    """The HTTP API of a running Prometheus."""

    def __init__(self, base_url):
        self.base_url = base_url

    def api(self, path, **params):
        answer = requests.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=5)
        body = answer.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def value(self, expr):
        """The single value ``expr`` returns; 0 when it returns none."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else 0.0

    def ready(self):
        try:
            return requests.get(f"{self.base_url}/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False


@contextlib.contextmanager
def running_prometheus(config, directory):
    """Debian's Prometheus with ``config`` on a free port, its data and log in
    ``directory``: a :class:`Prometheus` once it is ready."""
    port = free_port()
    with (directory / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            [prometheus_binary("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={directory / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log)
    client = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_for(client.ready, timeout=30)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=30)
