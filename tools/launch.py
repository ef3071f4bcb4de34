"""Run the whole shop on this machine: ``make run``.

Checks the config, the ports and the broker, applies every migration, starts
each service as its own ``nameko run`` process, prints where the gateway
listens once every service is consuming, and stops them all on Ctrl-C, on
SIGTERM, or when its terminal closes (SIGHUP, or the terminal seen to hang
up). The services never outlive it: each one gets SIGTERM from the kernel if
the launcher dies, even by SIGKILL.
"""
import argparse
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from kombu import Connection
from nameko.exceptions import ConfigurationError

from common.config import DEFAULT_CONFIG_PATH, check_settings, load_config
from notifications.delivery import transport_for
from tools.migrate import migrate_all
from tools.preflight import broker_problem, taken_port_problem

DOMAIN_SERVICES = ("users", "products", "inventory", "orders", "notifications")
SERVICES = DOMAIN_SERVICES + ("gateway",)
START_TIMEOUT = 60
STOP_TIMEOUT = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COLOURS = ("\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m", "\033[31m")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run every shop service on this machine.")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    args = parser.parse_args(argv)

    config = load_config(args.config)
    try:
        check_settings(config)
    except ConfigurationError as exc:
        sys.exit(f"Error: {exc}")
    problem = taken_port_problem(listening_ports(config)) or broker_problem(config["AMQP_URI"])
    if problem:
        sys.exit(f"Error: {problem}")
    say("Applying database migrations...")
    migrate_all(config)

    processes = {}
    kill_at_once = killer(processes)

    def interrupt(signum, frame):
        # switched before anything else runs, so that a second signal,
        # however soon it comes, kills the services instead of raising again
        handle_second_stop_signal(kill_at_once)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # A shell starts a background job with SIGINT ignored, and the services
    # would inherit that; with a handler here they get the default at exec.
    handle_stop_signals(interrupt)
    watch_terminal()
    try:
        for name in SERVICES:
            processes[name] = start_service(name, args.config)
        for index, (name, process) in enumerate(processes.items()):
            relay_output(name, index, process)
        wait_until_ready(config, processes)
        say(f"\nThe shop is running. Gateway listening on {gateway_url(config)}")
        say(f"Mails to customers go to {transport_for(config)}")
        say("Press Ctrl-C to stop every service.\n")
        exited = wait_for_any_exit(processes)
        sys.exit(f"Error: the {exited} service stopped; stopping the others")
    except KeyboardInterrupt:
        say("\nStopping...")
    finally:
        handle_second_stop_signal(kill_at_once)
        stop_all(processes)


def handle_stop_signals(handler):
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


def handle_second_stop_signal(kill_at_once):
    """While stopping, a second Ctrl-C or SIGTERM kills the services at once.
    A hang-up is no call for haste, and it may come twice (from the kernel
    or the shell, and from the watch on the terminal): it is ignored."""
    signal.signal(signal.SIGINT, kill_at_once)
    signal.signal(signal.SIGTERM, kill_at_once)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def watch_terminal():
    """Stop as on SIGHUP when the terminal the launcher runs in hangs up.

    The kernel sends SIGHUP to the session's leader alone. When ``make run``
    leads the session (a tmux session or a terminal emulator started with
    it, ``ssh -t host make run``), make gets it and waits for its children,
    which never hear of it; an idle shop writes nothing that would fail.
    Polling the terminal for nothing but its hang-up notices it at once."""
    terminal = next((fd for fd in (0, 1, 2) if os.isatty(fd)), None)
    if terminal is None:  # no terminal to lose: a pipe, a file, nohup
        return

    def watch():
        poller = select.poll()
        poller.register(terminal, 0)  # no events asked for: a hang-up is always reported
        poller.poll()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGHUP)

    threading.Thread(target=watch, name="terminal-watch", daemon=True).start()


def killer(processes):
    def kill_at_once(signum, frame):
        say("Stopping at once")
        for process in processes.values():
            process.kill()

    return kill_at_once


def say(text):
    """Print, unless the terminal has gone (closing it is a way to stop the shop)."""
    try:
        print(text, flush=True)
    except OSError:
        pass


def listening_ports(config):
    """``[(host, port, what)]``: every port a service of the shop listens on."""
    ports = [(*web_server_address(config), "the gateway, WEB_SERVER_ADDRESS")]
    metrics = config.get("METRICS") or {}
    for name, metrics_port in (metrics.get("PORTS") or {}).items():
        if metrics_port:  # 0 picks a free port, null serves none
            ports.append((metrics.get("HOST", "127.0.0.1"), int(metrics_port),
                          f"the {name} service's metrics, METRICS.PORTS.{name}"))
    return ports


def nameko_run_command(name, config_path):
    return [os.path.join(os.path.dirname(sys.executable), "nameko"), "run",
            "--config", config_path, f"{name}.service"]


def start_service(name, config_path):
    env = dict(os.environ)
    if sys.stdout.isatty():
        # the services write to our pipe, but their lines end up on a terminal
        env.setdefault("LOG_COLOR", "always")
    return subprocess.Popen(
        nameko_run_command(name, config_path), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        # in its own session, so that Ctrl-C reaches the launcher, which
        # then stops the services one by one
        start_new_session=True, preexec_fn=die_with_parent(os.getpid()))


def die_with_parent(parent_pid):
    """For the child, after fork: SIGTERM from the kernel when the launcher
    dies, however it dies (no thread runs yet, so this is safe after fork)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def set_parent_death_signal():
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the launcher died before prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def relay_output(name, index, process):
    prefix = f"{name:<9}|"
    if sys.stdout.isatty():
        prefix = f"{COLOURS[index % len(COLOURS)]}{prefix}\033[0m"

    def relay():
        # keeps draining the pipe when the terminal has gone, so that no
        # service blocks on a full pipe while it stops
        for line in process.stdout:
            try:
                sys.stdout.write(f"{prefix} {line}")
                sys.stdout.flush()
            except OSError:
                pass

    threading.Thread(target=relay, daemon=True).start()


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


def web_server_address(config):
    """Where the gateway listens, as nameko reads WEB_SERVER_ADDRESS."""
    host, _, port = str(config["WEB_SERVER_ADDRESS"]).rpartition(":")
    return host or "0.0.0.0", int(port)


def gateway_address(config):
    """Where a client on this machine reaches the gateway."""
    host, port = web_server_address(config)
    return ("127.0.0.1" if host == "0.0.0.0" else host), port


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
    # SIGTERM, not SIGINT: nameko answers SIGTERM by starting its stop in a
    # new green thread, whereas SIGINT's KeyboardInterrupt is raised in
    # whichever green thread runs when it arrives (the metrics server's,
    # say), which then dies alone and the service never stops
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in processes.items():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop within {STOP_TIMEOUT} s; killing it")
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
