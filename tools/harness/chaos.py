"""The crash test (``make chaos``): an order storm through the gateway while
services are killed and RabbitMQ restarts, then a check that nothing was lost.

It runs its own shop (see tools/harness/storm.py): every service as a ``nameko run``
process, in its own RabbitMQ virtual host and on its own databases (fresh
SQLite files under var/chaos, or the ``shop_chaos_<service>`` PostgreSQL
databases, which it empties). During the storm it SIGKILLs inventory, then orders, then products,
then notifications, restarting each a few seconds later; on PostgreSQL, stops the database
server for 3 s (``pg_ctlcluster ... stop -m fast``, then ``start``: every
connection drops, and the services must recover without a restart); and
restarts the RabbitMQ application once (``rabbitmqctl stop_app`` /
``start_app``). It needs the rights to do both. Once
the storm ends it waits for the shop to settle and prints:

- orders accepted (202) and settled; lost (accepted, then missing): must be 0;
- orders stuck pending: must be 0;
- negative stock, or reserved above on hand: must be none;
- stock conservation per product: initial = on hand + units sold;
- reserved units = the units of the orders awaiting payment;
- dead letters: must be 0;
- one mail (a .eml file) per order paid, rejected, cancelled or expired, and
  no other;
- HTTP answers: no server error but 503 with Retry-After;
- the time it took to settle.

It exits 1 when a check fails. Service logs go to var/chaos/<service>.log,
the figures to var/chaos/report.json.
"""
import argparse
import os
import subprocess
import time

from tools.harness.storm import add_arguments, run_test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, users=16, duration=60)
    run_test("Crash test", "chaos", parser.parse_args(argv), during_storm=havoc)


def havoc(stack, duration, shop):
    """Kill inventory, orders, products and notifications in turn, restart each 3 s
    later, then stop PostgreSQL for 3 s (when the shop runs on it), then
    restart RabbitMQ, spread over the storm."""
    started = time.monotonic()

    def at(fraction):
        time.sleep(max(0.0, started + duration * fraction - time.monotonic()))

    for fraction, name in ((0.1, "inventory"), (0.3, "orders"), (0.45, "products"),
                           (0.55, "notifications")):
        at(fraction)
        note(f"SIGKILL {name}")
        stack.kill(name)
        time.sleep(3)
        note(f"restart {name}")
        stack.start(name)
        # each blow lands on a shop that recovered from the one before
        stack.wait_until_ready()
    if stack.env["ORDERS_DB_URI"].startswith("postgresql"):
        at(0.6)
        note("stop PostgreSQL")
        postgresql("stop", "-m", "fast")  # drops every connection at once
        time.sleep(3)
        postgresql("start")
        note("PostgreSQL is back")
    at(0.75)
    note("restart RabbitMQ")
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    note("RabbitMQ is back")


def postgresql(*action):
    """``pg_ctlcluster`` on the machine's PostgreSQL cluster (``main``)."""
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", *action],
                   check=True, capture_output=True)


def note(what):
    print(f"  chaos: {what}", flush=True)


if __name__ == "__main__":
    main()
