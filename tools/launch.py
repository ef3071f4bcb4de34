"""Run the whole shop on this machine: ``make run``.

Checks the config and the broker, applies every migration, starts each
service as its own ``nameko run`` process, prints where the gateway listens
once every service is consuming, and stops them all on Ctrl-C.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from kombu import Connection
from nameko.exceptions import ConfigurationError

from common.config import DEFAULT_CONFIG_PATH, check_settings, load_config
from tools.migrate import migrate_all

DOMAIN_SERVICES = ("users", "products", "inventory", "orders")
SERVICES = DOMAIN_SERVICES + ("gateway",)
START_TIMEOUT = 60
STOP_TIMEOUT = 10
COLOURS = ("\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run every shop service on this machine.")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    args = parser.parse_args(argv)

    config = load_config(args.config)
    try:
        check_settings(config)
    except ConfigurationError as exc:
        sys.exit(f"Error: {exc}")
    check_broker(config["AMQP_URI"])
    print("Applying database migrations...", flush=True)
    migrate_all(config)

    # A shell starts a background job with SIGINT ignored, and the services
    # would inherit that; with a handler here they get the default at exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    processes = {name: start_service(name, args.config, index) for index, name in enumerate(SERVICES)}
    try:
        wait_until_ready(config, processes)
        print(f"\nThe shop is running. Gateway listening on {gateway_url(config)}", flush=True)
        print("Press Ctrl-C to stop every service.\n", flush=True)
        exited = wait_for_any_exit(processes)
        sys.exit(f"Error: the {exited} service stopped; stopping the others")
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        stop_all(processes)


def check_broker(amqp_uri):
    with Connection(amqp_uri, connect_timeout=3) as connection:
        try:
            connection.ensure_connection(max_retries=1)
        except Exception as exc:
            sys.exit(
                f"Error: RabbitMQ is not reachable at {connection.as_uri()} ({exc}). "
                "Start it with `rabbitmq-server -detached` or set AMQP_URI.")


def nameko_run_command(name, config_path):
    return [os.path.join(os.path.dirname(sys.executable), "nameko"), "run",
            "--config", config_path, f"{name}.service"]


def start_service(name, config_path, index):
    env = dict(os.environ)
    if sys.stdout.isatty():
        # the services write to our pipe, but their lines end up on a terminal
        env.setdefault("LOG_COLOR", "always")
    process = subprocess.Popen(
        nameko_run_command(name, config_path), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        # in its own session, so that Ctrl-C reaches the launcher, which
        # then stops the services one by one
        start_new_session=True)
    prefix = f"{name:<9}|"
    if sys.stdout.isatty():
        prefix = f"{COLOURS[index % len(COLOURS)]}{prefix}\033[0m"
    threading.Thread(target=relay_output, args=(process, prefix), daemon=True).start()
    return process


def relay_output(process, prefix):
    for line in process.stdout:
        sys.stdout.write(f"{prefix} {line}")
        sys.stdout.flush()


def wait_until_ready(config, processes):
    """Until each domain service consumes its RPC queue and the gateway accepts connections."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = set(SERVICES)
    while waiting:
        for name, process in processes.items():
            if process.poll() is not None:
                sys.exit(f"Error: the {name} service exited at start (code {process.returncode})")
        if time.monotonic() > deadline:
            sys.exit(f"Error: not ready after {START_TIMEOUT} s: {', '.join(sorted(waiting))}")
        waiting = {name for name in waiting if not is_ready(config, name)}
        time.sleep(0.2)


def is_ready(config, name):
    if name == "gateway":
        host, port = gateway_address(config)
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False
    with Connection(config["AMQP_URI"], connect_timeout=3) as connection:
        try:
            _, _, consumers = connection.default_channel.queue_declare(
                queue=f"rpc-{name}", passive=True)
        except connection.channel_errors:  # the queue does not exist yet
            return False
        return consumers > 0


def gateway_address(config):
    host, _, port = str(config["WEB_SERVER_ADDRESS"]).rpartition(":")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    return host, int(port)


def gateway_url(config):
    host, port = gateway_address(config)
    return f"http://{host}:{port}"


def wait_for_any_exit(processes):
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                return name
        time.sleep(0.5)


def stop_all(processes):
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in processes.items():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {STOP_TIMEOUT} s; killing it", flush=True)
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
