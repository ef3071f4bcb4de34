"""SIGTERM stops a ``nameko run`` process within 10 s, after its in-flight
workers finish; an idle HTTP service with an open connection included, and
a second SIGTERM while it stops changes nothing."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from tests.conftest import free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NAMEKO = Path(sys.executable).parent / "nameko"


def start_nameko_run(module, env):
    return subprocess.Popen(
        [str(NAMEKO), "run", "--config", "config.yaml", module], cwd=ROOT,
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextmanager
def nameko_run(module, env):
    """A running ``nameko run``, killed at the end. Its output is read as it
    comes, so that a full pipe never blocks it, and is shown if the test fails."""
    process = start_nameko_run(module, env)
    output = []

    def read():
        for line in process.stdout:
            output.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield process
    except Exception as exc:
        process.kill()
        reader.join(timeout=5)
        raise AssertionError(f"{exc}\n--- nameko run {module} printed:\n{''.join(output)}") from exc
    finally:
        process.kill()
        process.wait()


def stop_time(process):
    """Seconds from SIGTERM until the process exited."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    return time.monotonic() - started


def test_sigterm_lets_an_in_flight_call_finish(rabbit_config):
    with nameko_run("tests.e2e.slow_service", {"AMQP_URI": rabbit_config["AMQP_URI"]}) as service:
        with ClusterRpcProxy({"AMQP_URI": rabbit_config["AMQP_URI"]}, timeout=20) as rpc:
            wait_for(lambda: _answers(rpc), timeout=20)
            reply = rpc.slow.wait.call_async(2)
            time.sleep(0.5)  # the call is running
            took = stop_time(service)
            assert reply.result() == "done"
        assert 1.4 < took < 10


def test_a_second_sigterm_while_stopping_does_not_hang_the_stop(rabbit_config, db_uris):
    """As when make run's launcher dies: its pipe is gone and the kernel's
    parent-death signal arrives twice, a few milliseconds apart."""
    service = start_nameko_run("users.service", {
        "AMQP_URI": rabbit_config["AMQP_URI"], "USERS_DB_URI": db_uris["users"],
        "USERS_METRICS_PORT": "0"})
    try:
        with ClusterRpcProxy({"AMQP_URI": rabbit_config["AMQP_URI"]}, timeout=20) as rpc:
            wait_for(lambda: _pings(rpc.users), timeout=20)
        service.stdout.close()
        service.send_signal(signal.SIGTERM)
        time.sleep(0.02)
        took = stop_time(service)
    finally:
        service.kill()
    assert took < 10


def _pings(proxy):
    try:
        proxy.ping()
        return True
    except Exception:
        return False


def _answers(rpc):
    try:
        return rpc.slow.wait(0) == "done"
    except Exception:
        return False


def test_sigterm_stops_an_idle_gateway_with_an_open_connection(rabbit_config):
    port = free_port()
    with nameko_run("gateway.service", {
            "AMQP_URI": rabbit_config["AMQP_URI"],
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}) as gateway:
        wait_for(lambda: _listening(port), timeout=20)
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.sendall(b"GET /health HTTP/1.1\r\nHost: shop\r\n\r\n")
            assert idle.recv(100).startswith(b"HTTP/1.1 200")
            took = stop_time(gateway)
        assert took < 10


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_sigterm_stops_a_service_that_cannot_reach_the_broker(rabbit_manager, db_uris):
    """Its consumer keeps reconnecting (here: its virtual host is gone) and
    cannot cancel anything; the stop goes on without it."""
    vhost = f"shutdown-{uuid.uuid4().hex[:8]}"
    rabbit_manager.create_vhost(vhost)
    rabbit_manager.set_vhost_permissions(vhost, "guest", ".*", ".*", ".*")
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    with nameko_run("users.service", {
            "AMQP_URI": amqp_uri, "USERS_DB_URI": db_uris["users"],
            "USERS_METRICS_PORT": "0"}) as service:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=20) as rpc:
            wait_for(lambda: _pings(rpc.users), timeout=20)
        rabbit_manager.delete_vhost(vhost)  # the broker closes its connections
        time.sleep(1)  # it is reconnecting, and refused each time
        took = stop_time(service)
        assert took < 10


def test_a_stopping_service_finishes_its_calls_and_leaves_the_rest_to_another(rabbit_config):
    """Two instances, two workers each, six slow calls: the instance stopped
    mid-way finishes the two it runs; the calls it had not started are
    answered by the other instance."""
    env = {"AMQP_URI": rabbit_config["AMQP_URI"], "MAX_WORKERS": "2"}
    with nameko_run("tests.e2e.slow_service", env) as stopped, \
            nameko_run("tests.e2e.slow_service", env):
        with ClusterRpcProxy({"AMQP_URI": rabbit_config["AMQP_URI"]}, timeout=30) as rpc:
            wait_for(lambda: _answers(rpc), timeout=20)
            time.sleep(1)  # both instances consume
            replies = [rpc.slow.wait.call_async(1.5) for _ in range(6)]
            time.sleep(0.5)
            took = stop_time(stopped)
            assert [reply.result() for reply in replies] == ["done"] * 6
        assert 0.9 < took < 10


def test_a_stopping_gateway_drains_before_it_stops(rabbit_config):
    """SIGTERM: for SHUTDOWN_DRAIN_SECONDS the gateway says not ready and
    still answers; then it takes no new connection, and the request it is
    answering (GET /health, which waits 0.8 s for a slow users service) is
    answered in full before it exits."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    amqp = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    with nameko_run("tests.e2e.slow_service:SlowUsers", amqp), nameko_run("gateway.service", {
            **amqp, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "SHUTDOWN_DRAIN_SECONDS": "2"}) as gateway:
        wait_for(lambda: _listening(port), timeout=20)
        wait_for(lambda: requests.get(f"{base}/health", timeout=5).json()["services"]["users"]
                 ["status"] == "ok", timeout=20)
        assert requests.get(f"{base}/health/ready", timeout=5).status_code == 503  # no services
        signalled = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = requests.get(f"{base}/health/ready", timeout=5)
        assert (ready.status_code, ready.json()["status"]) == (503, "stopping")
        served = requests.get(f"{base}/openapi.json", timeout=5)
        assert served.status_code == 200 and served.headers["Connection"] == "close"
        time.sleep(max(0, signalled + 1.5 - time.monotonic()))
        in_flight = requests.get(f"{base}/health", timeout=10)  # spans the end of the drain
        assert in_flight.status_code == 200 and time.monotonic() - signalled > 2.2
        assert in_flight.json()["services"]["users"]["version"] == "test"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/openapi.json", timeout=5)
        gateway.wait(timeout=10)
