"""What ``make run`` and ``make test`` need from this machine, checked before
anything starts, each failure one line that says how to fix it.

    python -m tools.preflight tests [--postgres URI]   # before the suite (make test)

The launcher (``make run``) calls :func:`broker_problem` and
:func:`taken_port_problem` itself.
"""
import argparse
import errno
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from kombu import Connection

# what nameko's pytest plugin uses unless given --amqp-uri / --rabbit-ctl-uri
DEFAULT_AMQP_URI = "amqp://guest:guest@localhost:5672/"
DEFAULT_RABBIT_CTL_URI = "http://guest:guest@localhost:15672"


def broker_problem(amqp_uri):
    with Connection(amqp_uri, connect_timeout=3) as connection:
        try:
            connection.ensure_connection(max_retries=1)
        except Exception as exc:
            return (f"RabbitMQ is not reachable at {connection.as_uri()} ({exc}). "
                    "Start it with `rabbitmq-server -detached` or set AMQP_URI.")
    return None


def management_problem(ctl_uri):
    """Nameko's ``rabbit_config`` fixture makes a vhost per test through this API."""
    parts = urlsplit(ctl_uri)
    shown = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, shown, parts.username or "", parts.password or "")
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(manager))
    try:
        opener.open(f"{shown}/api/overview", timeout=3).close()
    except urllib.error.HTTPError as exc:
        return (f"RabbitMQ's management API at {shown} refused the test account "
                f"({exc.code} {exc.reason}); the tests use {parts.username} as in RABBIT_CTL_URI.")
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        return (f"RabbitMQ's management API is not reachable at {shown} ({reason}); "
                "the tests need it: run `rabbitmq-plugins enable rabbitmq_management`.")
    return None


def postgres_problem(uri):
    parts = urlsplit(uri)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return (f"PostgreSQL is not reachable at {host}:{port} ({exc.strerror or exc}). "
                "Start it with `pg_ctlcluster --skip-systemctl-redirect "
                "$(ls /etc/postgresql) main start` or set PG_URI.")
    return None


def taken_port_problem(ports):
    """``ports``: ``[(host, port, what)]``. The first one a server could not
    listen on, as a sentence, or None."""
    for host, port, what in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as eventlet.listen does, so a port in TIME_WAIT counts as free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
                sock.listen()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    return f"cannot listen on {host}:{port} for {what} ({exc.strerror})."
                return (f"port {port} ({what}) is already in use: the shop may already be "
                        "running (stop it with Ctrl-C), or free the port and try again.")
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["tests"])
    parser.add_argument("--amqp-uri", default=DEFAULT_AMQP_URI)
    parser.add_argument("--rabbit-ctl-uri", default=DEFAULT_RABBIT_CTL_URI)
    parser.add_argument("--postgres", metavar="URI", help="also check PostgreSQL at URI")
    args = parser.parse_args(argv)
    problems = (
        lambda: broker_problem(args.amqp_uri),
        lambda: management_problem(args.rabbit_ctl_uri),
        lambda: args.postgres and postgres_problem(args.postgres),
    )
    for problem in problems:
        message = problem()
        if message:
            sys.exit(f"Error: {message}")


if __name__ == "__main__":
    main()
