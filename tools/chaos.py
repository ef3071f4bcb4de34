"""The crash test (``make chaos``): an order storm through the gateway while
services are killed and RabbitMQ restarts, then a check that nothing was lost.

It runs its own shop: every service as a ``nameko run`` process, in its own
RabbitMQ virtual host and on its own databases (fresh SQLite files under
var/chaos, or the ``shop_chaos_<service>`` PostgreSQL databases, which it
empties). During the storm it SIGKILLs inventory, then orders, then products,
restarting each a few seconds later, and restarts the RabbitMQ application
once (``rabbitmqctl stop_app`` / ``start_app``: it needs the rights to). Once
the storm ends it waits for the shop to settle and prints:

- orders accepted (202) and settled; lost (accepted, then missing): must be 0;
- orders stuck pending: must be 0;
- negative stock, or reserved above on hand: must be none;
- stock conservation per product: initial = on hand + units sold;
- reserved units = the units of the orders awaiting payment;
- dead letters: must be 0;
- the time it took to settle.

It exits 1 when a check fails. Service logs go to var/chaos/<service>.log,
the figures to var/chaos/report.json.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import requests
from sqlalchemy import text

from common.db import create_db_engine
from common.migrations import upgrade
from tools.dlq import DeadLetterQueue
from tools.launch import DOMAIN_SERVICES, SERVICES, nameko_run_command

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "chaos"
VHOST = "shop-chaos"
BROKER = "guest:guest@127.0.0.1"
PG_URI = os.environ.get("PG_URI", "postgresql://postgres@127.0.0.1:5432")
ADMIN = ("chaos-admin", "chaos-admin-password")
PRODUCTS, INITIAL_STOCK = 10, 40
SETTLE_TIMEOUT = 120


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--users", type=int, default=16, help="concurrent customers")
    parser.add_argument("--duration", type=float, default=60, help="storm seconds")
    parser.add_argument("--port", type=int, default=8099, help="the gateway's port")
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    env = prepare(args)
    stack = Stack(env)
    try:
        stack.start_all()
        shop = Shop(f"http://127.0.0.1:{args.port}")
        product_ids = shop.set_up()
        print(f"storm: {args.users} customers for {args.duration:g} s, "
              f"{PRODUCTS} products with {INITIAL_STOCK} units each", flush=True)
        chaos = threading.Thread(target=stack.havoc, args=(args.duration,), daemon=True)
        chaos.start()
        storm = shop.storm(product_ids, args.users, args.duration)
        chaos.join()
        report = settle_and_check(env, storm, product_ids)
        report["crashed_services"] = stack.crashed()
        report["checks"]["no service crashed"] = not report["crashed_services"]
        report["passed"] = all(report["checks"].values())
    finally:
        stack.stop_all()
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    sys.exit(0 if report["passed"] else 1)


def prepare(args):
    """Fresh databases and a fresh vhost; the environment every service gets."""
    uris = {}
    for name in DOMAIN_SERVICES:
        if args.database == "postgresql":
            uris[name] = f"{PG_URI}/shop_chaos_{name}"
            ensure_pg_database(f"shop_chaos_{name}")
            engine = create_db_engine(uris[name])
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        else:
            path = OUT / f"{name}.db"
            for leftover in OUT.glob(f"{name}.db*"):
                leftover.unlink()
            uris[name] = f"sqlite:///{path}"
        upgrade(name, uris[name])
    management = f"http://{BROKER}:15672/api/vhosts/{VHOST}"
    requests.delete(management, timeout=10)
    requests.put(management, timeout=10).raise_for_status()
    requests.put(f"http://{BROKER}:15672/api/permissions/{VHOST}/guest", timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return {
        **os.environ,
        "AMQP_URI": f"amqp://{BROKER}:5672/{urllib.parse.quote(VHOST, safe='')}",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{args.port}",
        **{f"{name.upper()}_DB_URI": uri for name, uri in uris.items()},
        "SHOP_ADMIN_USERNAME": ADMIN[0], "SHOP_ADMIN_PASSWORD": ADMIN[1],
        # a dead service is noticed quickly, and trial calls come soon after
        "RPC_TIMEOUT_SECONDS": "3", "RPC_BREAKER_RESET_SECONDS": "2",
    }


def ensure_pg_database(name):
    engine = create_db_engine(f"{PG_URI}/postgres").execution_options(
        isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


class Stack:
    """The five services as processes, and the havoc done to them."""

    def __init__(self, env):
        self.env = env
        self.processes = {}
        self.events = []

    def start(self, name):
        log = open(OUT / f"{name}.log", "a")
        self.processes[name] = subprocess.Popen(
            nameko_run_command(name, "config.yaml"), cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_all(self):
        for name in SERVICES:
            self.start(name)
        gateway = f"http://{self.env['WEB_SERVER_ADDRESS']}"
        wait(lambda: get_status(f"{gateway}/health/ready") == 200, 60, "the shop to start")

    def crashed(self):
        """The services that exited without being killed on purpose."""
        return sorted(name for name, process in self.processes.items()
                      if process.poll() is not None)

    def kill(self, name):
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop_all(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

    def havoc(self, duration):
        """Kill inventory, orders and products in turn, restart each 3 s
        later, then restart RabbitMQ, spread over the storm."""
        started = time.monotonic()

        def at(fraction):
            time.sleep(max(0.0, started + duration * fraction - time.monotonic()))

        for fraction, name in ((0.1, "inventory"), (0.3, "orders"), (0.5, "products")):
            at(fraction)
            self.note(f"SIGKILL {name}")
            self.kill(name)
            time.sleep(3)
            self.note(f"restart {name}")
            self.start(name)
        at(0.7)
        self.note("restart RabbitMQ")
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        time.sleep(2)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
        self.note("RabbitMQ is back")

    def note(self, what):
        self.events.append(what)
        print(f"  chaos: {what}", flush=True)


class Shop:
    """The storm's side: customers using the HTTP API."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.statuses = Counter()
        self.accepted = {}  # order id -> quantity per product
        self.lock = threading.Lock()

    def call(self, method, path, token=None, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = requests.request(
                method, self.base_url + path, headers=headers, timeout=15, **kwargs)
        except requests.RequestException:
            with self.lock:
                self.statuses["no answer"] += 1
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
        return response

    def token(self, username, password):
        response = self.call("POST", "/login", json={"username": username, "password": password})
        response.raise_for_status()
        return response.json()["access_token"]

    def set_up(self):
        admin = self.token(*ADMIN)
        product_ids = []
        for number in range(PRODUCTS):
            created = self.call("POST", "/products", admin,
                                json={"name": f"Chaos product {number}", "price": "1.50"})
            created.raise_for_status()
            product_id = created.json()["id"]
            self.call("POST", f"/inventory/{product_id}", admin,
                      json={"quantity": INITIAL_STOCK}).raise_for_status()
            product_ids.append(product_id)
        return product_ids

    def storm(self, product_ids, users, duration):
        customers = []
        for number in range(users):
            username = f"customer{number}"
            self.call("POST", "/register", json={
                "username": username, "email": f"{username}@example.com",
                "password": "storm-password"})
            customers.append(self.token(username, "storm-password"))
        deadline = time.monotonic() + duration
        threads = [threading.Thread(target=self.customer, args=(token, product_ids, deadline))
                   for token in customers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"accepted": dict(self.accepted), "statuses": dict(self.statuses)}

    def customer(self, token, product_ids, deadline):
        chance = random.Random()
        while time.monotonic() < deadline:
            lines = {pid: chance.randint(1, 3) for pid in chance.sample(product_ids, chance.randint(1, 3))}
            placed = self.call("POST", "/orders", token, json={
                "items": [{"product_id": p, "quantity": q} for p, q in lines.items()]})
            if placed is None or placed.status_code != 202:
                time.sleep(0.2)
                continue
            order_id = placed.json()["id"]
            with self.lock:
                self.accepted[order_id] = lines
            status = self.wait_for_answer(token, order_id, deadline)
            if status == "awaiting_payment":
                choice = chance.random()
                if choice < 0.6:
                    self.call("POST", f"/orders/{order_id}/pay", token)
                elif choice < 0.85:
                    self.call("POST", f"/orders/{order_id}/cancel", token)

    def wait_for_answer(self, token, order_id, deadline):
        while time.monotonic() < deadline:
            response = self.call("GET", f"/orders/{order_id}", token)
            if response is not None and response.status_code == 200:
                status = response.json()["status"]
                if status != "pending":
                    return status
            time.sleep(0.1)
        return None


def settle_and_check(env, storm, product_ids):
    """Wait until no order is pending and no event waits to be published,
    then check every invariant."""
    engines = {name: create_db_engine(env[f"{name.upper()}_DB_URI"])
               for name in ("orders", "inventory")}
    started = time.monotonic()
    settled = False
    while time.monotonic() - started < SETTLE_TIMEOUT:
        state = read_state(engines)
        if state["pending"] == 0 and state["unsent_events"] == 0 and \
                state["reserved"] == state["awaiting"]:
            settled = True
            break
        time.sleep(0.5)
    settle_seconds = time.monotonic() - started
    state = read_state(engines)
    for engine in engines.values():
        engine.dispose()
    with DeadLetterQueue(env["AMQP_URI"]) as queue:
        dead_letters = len(queue.list())

    accepted = storm["accepted"]
    lost = sorted(set(accepted) - set(state["orders"]))
    stock = state["stock"]
    broken_stock = {pid: row for pid, row in stock.items()
                    if row["on_hand"] < 0 or row["reserved"] < 0 or row["reserved"] > row["on_hand"]}
    unconserved = {pid: stock.get(pid) for pid in product_ids
                   if stock.get(pid, {}).get("on_hand", 0) + state["sold"].get(pid, 0)
                   != INITIAL_STOCK}
    mismatched = {pid: (row["reserved"], state["awaiting"].get(pid, 0))
                  for pid, row in stock.items() if row["reserved"] != state["awaiting"].get(pid, 0)}
    checks = {
        "orders lost": len(lost) == 0,
        "orders stuck pending": state["pending"] == 0,
        "negative or over-reserved stock": not broken_stock,
        "stock conservation": not unconserved,
        "reserved matches orders awaiting payment": not mismatched,
        "dead letters": dead_letters == 0,
        "settled": settled,
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "orders_accepted": len(accepted),
        "orders_settled": sum(1 for order_id in accepted if order_id in state["orders"]
                              and state["orders"][order_id] != "pending"),
        "orders_lost": lost,
        "orders_stuck_pending": state["pending"],
        "orders_by_status": dict(Counter(state["orders"].values())),
        "broken_stock": broken_stock,
        "unconserved_stock": unconserved,
        "reserved_mismatch": mismatched,
        "dead_letters": dead_letters,
        "unsent_events": state["unsent_events"],
        "settle_seconds": round(settle_seconds, 1),
        "http_answers": {str(status): n for status, n in storm["statuses"].items()},
    }


def read_state(engines):
    with engines["orders"].connect() as connection:
        orders = dict(connection.execute(text("SELECT id, status FROM orders")).all())
        held = Counter()
        for status, product_id, quantity in connection.execute(text(
                "SELECT o.status, l.product_id, l.quantity FROM orders o "
                "JOIN order_lines l ON l.order_id = o.id")):
            held[(status, product_id)] += quantity
        unsent = connection.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    with engines["inventory"].connect() as connection:
        stock = {row.product_id: {"on_hand": row.on_hand, "reserved": row.reserved}
                 for row in connection.execute(
                     text("SELECT product_id, on_hand, reserved FROM stock"))}
        unsent += connection.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    return {
        "orders": orders,
        "pending": sum(1 for status in orders.values() if status == "pending"),
        "sold": {pid: q for (status, pid), q in held.items() if status == "paid"},
        "awaiting": {pid: q for (status, pid), q in held.items() if status == "awaiting_payment"},
        "reserved": {pid: row["reserved"] for pid, row in stock.items() if row["reserved"]},
        "stock": stock,
        "unsent_events": unsent,
    }


def print_report(report):
    print("\nCrash test")
    print(f"  orders accepted            {report['orders_accepted']}")
    print(f"  orders settled             {report['orders_settled']}")
    print(f"  orders lost                {len(report['orders_lost'])}")
    print(f"  orders stuck pending       {report['orders_stuck_pending']}")
    print(f"  orders by status           {report['orders_by_status']}")
    print(f"  negative stock             {report['broken_stock'] or 'none'}")
    print(f"  stock conservation         "
          f"{'holds' if not report['unconserved_stock'] else report['unconserved_stock']}")
    print(f"  reserved = awaiting payment "
          f"{'yes' if not report['reserved_mismatch'] else report['reserved_mismatch']}")
    print(f"  dead letters               {report['dead_letters']}")
    print(f"  time to settle             {report['settle_seconds']} s")
    print(f"  services that crashed      {', '.join(report['crashed_services']) or 'none'}")
    print(f"  HTTP answers               {report['http_answers']}")
    failed = [name for name, ok in report["checks"].items() if not ok]
    print("PASSED" if not failed else f"FAILED: {', '.join(failed)}")


def get_status(url):
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"Error: timed out after {timeout} s waiting for {what}")
        time.sleep(0.3)


if __name__ == "__main__":
    main()
