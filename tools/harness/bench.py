"""The shop's benchmark (``make bench``; ``make bench-quick`` for a short check).

Starts the real stack (each service its own ``nameko run`` process, on
RabbitMQ and PostgreSQL by default), loads a catalogue with stock, and drives
the HTTP API with wrk for bounded durations, at several concurrencies:

- ``product``: ``GET /products/<id>``, a random one of the catalogue, each
  read once first (the cache's steady state);
- ``catalogue``: ``GET /products?limit=20``;
- ``place``: ``POST /orders`` (202 accepted), one line of a random product;
- ``flow``: per virtual user, place an order, poll until it is
  ``awaiting_payment`` (as the storefront does), pay (a Python driver: it
  needs the answers), timed to the order's own ``updated_at``;
- ``expiry``: a flash sale's unpaid orders (``--expiring``, 10,000) falling
  due in the same second, written straight into the databases
  (tools/harness/dataset.py), with a second orders instance started: the seconds
  until every one is expired and its stock released.

In the same run it measures the floor on this machine with stock Nameko
(tools/harness/bench_floor.py): ``floor-plain``, a trivial ``@http`` endpoint, and
``floor-one-hop``, an ``@http`` endpoint making one stock RPC call to an echo
service; and ``shop-one-hop``, the same call over the shop's RPC. Every scenario is reported with its throughput, latency
percentiles, errors, and its throughput as a ratio to ``floor-one-hop`` at
the same concurrency: these machines are noisy, ratios are what compare.
The machine's speed drifts within minutes, so ``floor-one-hop`` runs
between every two scenarios (for half their duration), and each scenario's
ratio is to the mean of the floor measured just before and just after it.

Writes var/bench/report.json and report.md, prints a summary table, and
draws var/bench/chart.svg (tools/harness/bench_chart.py), this run beside the one
before it.
"""
import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import func, select, text

from common.data.db import create_db_engine, utcnow
from inventory.models import Stock
from orders.domain import AWAITING_PAYMENT, PAID
from orders.models import Order
from tools.harness import storm
from tools.harness.dataset import (
    NOUNS_BY_CATEGORY, insert_orders, insert_products, made_up_product)
from tools.launch import SERVICES

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
PREVIOUS = OUT / "previous-report.json"
# the full run docs/performance.md shows: its report and chart, copied from OUT
PUBLISHED = ROOT / "docs"
CHART_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
LUA = ROOT / "tools" / "harness" / "wrk" / "http.lua"
STOCK_PER_PRODUCT = 1_000_000
# how often the flow's virtual users ask whether their order is reserved:
# as the storefront does (POLL_MS in gateway/storefront/app.js)
FLOW_POLL_SECONDS = 0.4
FLOOR = {"bench_floor": "tools.harness.bench_floor:FloorService",
         "bench_echo": "tools.harness.bench_floor:EchoService",
         "bench_shop_echo": "tools.harness.bench_floor:ShopEchoService"}
TARGETS = (
    # (what, scenario, concurrency, check(result) -> bool)
    ("the shop's RPC hop >= 1.1x stock Nameko's", "shop-one-hop", 16,
     lambda result: result["ratio"] >= 1.1),
    ("GET /products/<id> >= 2.0x the one-hop floor's throughput", "product", 16,
     lambda result: result["ratio"] >= 2.0),
    ("GET /products (a page of 20) >= 1.5x the one-hop floor's throughput", "catalogue", 16,
     lambda result: result["ratio"] >= 1.5),
    ("POST /orders >= 0.25x the one-hop floor's throughput, no errors", "place", 16,
     lambda result: result["ratio"] >= 0.25 and result["errors"] == 0),
    ("services' CPU per placed order <= 8 ms", "place", 16,
     lambda result: result["cpu_ms_per_request"]["services"] <= 8),
    *((f"search {what} >= 0.5x the one-hop floor's throughput, p99 < 100 ms", scenario, 16,
       lambda result: result["ratio"] >= 0.5 and result["latency_ms"]["p99"] < 100)
      for what, scenario in (("by a word", "search-word"), ("by category", "search-category"),
                             ("by price range, sorted by price", "search-price"))),
    ("full flow: p99 from place to awaiting_payment < 150 ms", "flow", 16,
     lambda result: result["to_awaiting_payment_ms"]["p99"] < 150),
    ("full flow: p50 from place to awaiting_payment at c=1 < 15 ms", "flow", 1,
     lambda result: result["to_awaiting_payment_ms"]["p50"] < 15),
)
MAX_RSS_MB = 150
EXPIRY_TARGET_SECONDS = 60
SEARCHES = ("search-word", "search-category", "search-price")
SCENARIOS = ("product", "catalogue", "catalogue-pages", "catalogue-deep", "catalogue-keyset",
             *SEARCHES, "orders-pages", "orders-deep", "place", "flow", "expiry")
# the words a search scenario looks for: one of each of these products, taken at random
SEARCH_WORDS_FROM = 500
# --data-scale: what a shop that has run for a year holds
SCALE_PRODUCTS = 100_000
SCALE_ORDERS = 1_000_000
# the deep pages: the catalogue's last, and a customer's 500th page of 20 orders
DEEP_ORDERS_OFFSET = 9_980
PAGES = 1_000  # the offsets a pages scenario spreads over
# the scenarios whose cost may grow with the data, and by how much at most
SCALE_COMPARED = ("product", "catalogue", "catalogue-pages", *SEARCHES, "place", "flow")
SCALE_TOLERANCE = 1.2
# a search's matches grow with the catalogue, where a page's rows do not
SEARCH_SCALE_TOLERANCE = 1.5


def scale_tolerance(scenario):
    return SEARCH_SCALE_TOLERANCE if scenario in SEARCHES else SCALE_TOLERANCE


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short run for checks: few products, 2 s per scenario, c=16")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--port", type=int, default=8097, help="the gateway's port")
    parser.add_argument("--duration", type=float, help="seconds per scenario")
    parser.add_argument("--products", type=int)
    parser.add_argument("--concurrency", type=int, nargs="+")
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=SCENARIOS,
                        help="the shop's scenarios to run (the floor always runs)")
    parser.add_argument("--expiring", type=int, default=10_000,
                        help="orders falling due at once in the expiry scenario")
    parser.add_argument("--data-scale", action="store_true",
                        help=f"first load {SCALE_PRODUCTS:,} products and {SCALE_ORDERS:,} orders "
                             "straight into the databases")
    args = parser.parse_args(argv)
    duration = args.duration or (2 if args.quick else 10)
    products = args.products or (100 if args.quick else 1000)
    concurrencies = args.concurrency or ([16] if args.quick else [1, 16, 64])
    if shutil.which("wrk") is None:
        sys.exit("Error: wrk is not installed (apt install wrk)")

    env = storm.prepare("bench", args)
    env["LOG_LEVEL"] = "WARNING"  # a line per request would measure the terminal
    stack = storm.Stack("bench", env)
    floor_port = args.port + 1
    progress(f"starting the shop ({args.database}) and the stock Nameko floor")
    try:
        stack.start_all()
        start_floor(stack, env, floor_port)
        shop = f"http://127.0.0.1:{args.port}"
        ids, customers = seed(shop, products, max(concurrencies))
        bench = Bench(shop, f"http://127.0.0.1:{floor_port}", ids, customers, len(ids), duration)
        small = []
        if args.data_scale:
            # the scenarios whose cost may grow with the data, first at the
            # seeded size: the comparison stays within one run
            progress(f"before loading the data: {', '.join(SCALE_COMPARED)}")
            compared = set(SCALE_COMPARED) & set(args.scenario)
            for concurrency in concurrencies:
                small += run_round(stack, bench, concurrency, compared)
            bench.catalogue_size += load_data_scale(env, ids, customers)
        results = []
        for concurrency in concurrencies:
            results += run_round(stack, bench, concurrency, args.scenario)
        expiry = None
        if "expiry" in args.scenario:
            progress(f"expiry: {args.expiring} orders due at once, two orders instances")
            expiry = run_expiry(stack, env, ids, args.expiring)
        memory = {name: rss_mb(process.pid) for name, process in stack.processes.items()}
    finally:
        stack.stop_all()
    report = make_report(args, duration, products, results, small, expiry, memory)
    OUT.mkdir(parents=True, exist_ok=True)
    if (OUT / "report.json").exists():
        (OUT / "report.json").replace(PREVIOUS)
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "report.md").write_text(markdown(report))
    print()
    print(markdown(report))
    print(f"Report: {OUT / 'report.md'} and report.json")
    draw_chart()


@dataclass
class Bench:
    """What every scenario needs: where the shop and the floor listen, the
    seeded products and customers, the catalogue's size now."""
    shop: str
    floor: str
    ids: list
    customers: list
    catalogue_size: int
    duration: float

    def search_words(self):
        """A word of the name of each of SEARCH_WORDS_FROM products of the
        catalogue, taken at random (tools/harness/dataset.py made them up)."""
        chance = random.Random(self.catalogue_size)
        return " ".join(
            chance.choice(made_up_product(chance.randrange(self.catalogue_size))["name"].split())
            for _ in range(SEARCH_WORDS_FROM))


def run_round(stack, bench, concurrency, names):
    """The floor's scenarios and those of ``names``, at one concurrency."""
    scenarios = {
        "floor-plain": dict(url=bench.floor, path="/plain"),
        "floor-one-hop": dict(url=bench.floor, path="/one-hop"),
        "shop-one-hop": dict(url=bench.floor, path="/shop-one-hop"),
        "product": dict(url=bench.shop, path="/products/{id}", ids=bench.ids),
        "catalogue": dict(url=bench.shop, path="/products?limit=20"),
        # pages at random offsets near the start and near the end: the
        # cache treats both alike, so their ratio is the database's depth
        "catalogue-pages": dict(url=bench.shop, path="/products?limit=20&offset={id}",
                                ids=(0, PAGES - 20)),
        "catalogue-deep": dict(url=bench.shop, path="/products?limit=20&offset={id}",
                               # a quick run's catalogue is smaller than PAGES
                               ids=(max(0, bench.catalogue_size - PAGES),
                                    max(0, bench.catalogue_size - 20))),
        # keyset pages from the middle, where an offset walks furthest
        "catalogue-keyset": dict(url=bench.shop, path="/products?limit=20&after={id}",
                                 ids=(max(0, bench.catalogue_size // 2 - PAGES // 2),
                                      bench.catalogue_size // 2 + PAGES // 2)),
        "search-word": dict(url=bench.shop, path="/products?q={word}", words=bench.search_words()),
        "search-category": dict(url=bench.shop, path="/products?category={word}",
                                words=" ".join(NOUNS_BY_CATEGORY)),
        # the products at one price (N.90), the cheapest first
        "search-price": dict(url=bench.shop, ids=(1, 50),
                             path="/products?min_price={id}.00&max_price={id}.99&sort=price"),
        "orders-pages": dict(url=bench.shop, path="/orders?limit=20&offset={id}",
                             ids=(0, PAGES - 20), token=bench.customers[-1]),
        "orders-deep": dict(url=bench.shop, path="/orders?limit=20&offset={id}",
                            ids=(DEEP_ORDERS_OFFSET - PAGES + 20, DEEP_ORDERS_OFFSET),
                            token=bench.customers[-1]),
        "place": dict(url=bench.shop, path="/orders", method="POST", ids=bench.ids,
                      token=bench.customers[0], idempotency_keys=True,
                      body='{"items": [{"product_id": {id}, "quantity": 1}]}'),
    }
    floor = scenarios.pop("floor-one-hop")
    floor_duration = max(2, bench.duration / 2)

    def measure(name, run, duration):
        progress(f"c={concurrency:<3} {name:<14} {duration:g} s")
        with cpu_meter(stack) as cpu:
            result = run()
        return {"scenario": name, "concurrency": concurrency, **result,
                **cpu.per_request(result["requests"])}

    def measure_floor():
        return measure("floor-one-hop", lambda: run_wrk(concurrency, floor_duration, **floor),
                       floor_duration)

    floors, results = [measure_floor()], []
    for name, scenario in scenarios.items():
        if not (name.endswith("one-hop") or name.startswith("floor") or name in names):
            continue
        if name == "product":
            warm_up(bench.shop, bench.ids)
        result = measure(name, lambda: run_wrk(concurrency, bench.duration, **scenario),
                         bench.duration)
        floors.append(measure_floor())
        result["floor"] = round((floors[-2]["throughput"] + floors[-1]["throughput"]) / 2, 1)
        results.append(result)
    if "flow" in names:
        results.append(measure("flow", lambda: run_flow(
            bench.shop, bench.customers[:concurrency], bench.ids, bench.duration),
            bench.duration))
    # the floor's row: its median run, with every run's throughput
    middle = sorted(floors, key=lambda run: run["throughput"])[len(floors) // 2]
    runs = [run["throughput"] for run in floors]
    return [{**middle, "floor": middle["throughput"], "runs": runs}, *results]


def draw_chart():
    """The chart of this run beside the previous one here, or else beside the
    full run whose figures docs/performance.md shows."""
    if not CHART_PYTHON.exists():
        print("No chart: matplotlib is not installed (make bench installs it in .venv-bench)")
        return
    previous = PREVIOUS if PREVIOUS.exists() else PUBLISHED / "benchmark.json"
    subprocess.run([str(CHART_PYTHON), "-m", "tools.harness.bench_chart", str(OUT / "report.json"),
                    str(previous), "--out", str(OUT / "chart.svg")], cwd=ROOT, check=True)


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_floor(stack, env, port):
    floor_env = {**env, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    for name, target in FLOOR.items():
        log = open(stack.out / f"{name}.log", "w")
        stack.processes[name] = subprocess.Popen(
            [str(Path(sys.executable).parent / "nameko"), "run", "--config", "config.yaml", target],
            cwd=ROOT, env=floor_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    for path in ("/one-hop", "/shop-one-hop"):
        storm.wait(lambda: storm.get_status(f"http://127.0.0.1:{port}{path}") == 200, 60,
                   "the floor services")


def seed(shop, products, users):
    """``products`` products with plenty of stock, and ``users`` customers' tokens."""
    progress(f"loading {products} products with stock, and {users} customers")
    session = requests.Session()
    storm.wait(lambda: login(session, shop, *storm.ADMIN) is not None, 30, "the admin account")
    admin = {"Authorization": f"Bearer {login(session, shop, *storm.ADMIN)}"}

    def create(number):
        with requests.Session() as own:
            created = own.post(f"{shop}/products", headers=admin, timeout=30,
                           json=made_up_product(number))
            created.raise_for_status()
            product_id = created.json()["id"]
            own.post(f"{shop}/inventory/{product_id}", headers=admin, timeout=30,
                     json={"quantity": STOCK_PER_PRODUCT}).raise_for_status()
            return product_id

    def customer(number):
        with requests.Session() as own:
            username = f"bench{number}"
            own.post(f"{shop}/register", timeout=30, json={
                "username": username, "email": f"{username}@example.com",
                "password": "bench-password"})
            return login(own, shop, username, "bench-password")

    with ThreadPoolExecutor(8) as pool:
        ids = sorted(pool.map(create, range(products)))
        tokens = list(pool.map(customer, range(users)))
    return ids, tokens


def load_data_scale(env, ids, customers):
    """Products up to SCALE_PRODUCTS and SCALE_ORDERS paid orders, spread over
    the customers, written straight into the databases (tools/harness/dataset.py).
    The scenarios still use the products and customers ``seed`` made, now
    among a year's rows. Returns how many products it added."""
    engines = {name: create_db_engine(env[f"{name.upper()}_DB_URI"])
               for name in ("products", "orders", "inventory")}
    try:
        progress(f"data scale: loading {SCALE_PRODUCTS - len(ids):,} more products")
        added = insert_products(engines["products"], engines["inventory"],
                                SCALE_PRODUCTS - len(ids), on_hand=STOCK_PER_PRODUCT,
                                first=len(ids))
        progress(f"data scale: loading {SCALE_ORDERS:,} paid orders of {len(customers)} customers")
        insert_orders(engines["orders"], engines["inventory"], SCALE_ORDERS, status=PAID,
                      products={pid: (f"Bench product {pid}", "1.90") for pid in ids},
                      user_ids=[user_id_of(token) for token in customers])
        for engine in engines.values():
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))  # as autovacuum would by now
        return len(added)
    finally:
        for engine in engines.values():
            engine.dispose()


def user_id_of(token):
    """The user id a token names (the bench made the token: no need to verify it)."""
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def warm_up(shop, ids):
    """Read every product once, so that the scenario measures the catalogue
    cache in its steady state (a product's first read, and one per
    ``CATALOGUE_CACHE.TTL_SECONDS`` after, goes to the products service)."""
    def read(chunk):
        with requests.Session() as session:
            for product_id in chunk:
                session.get(f"{shop}/products/{product_id}", timeout=30).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, [ids[start::8] for start in range(8)]))


def login(session, shop, username, password):
    try:
        answer = session.post(f"{shop}/login", timeout=10,
                              json={"username": username, "password": password})
    except requests.RequestException:
        return None
    return answer.json()["access_token"] if answer.status_code == 200 else None


def run_wrk(concurrency, duration, url, path, method="GET", ids=(1,), words=None, token=None,
            body=None, idempotency_keys=False):
    out = OUT / "wrk.json"
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_OUT": str(out),
           "BENCH_ID_MIN": str(min(ids)), "BENCH_ID_MAX": str(max(ids))}
    if token:
        env["BENCH_TOKEN"] = token
    if words:
        env["BENCH_WORDS"] = words
    if body:
        env["BENCH_BODY"] = body
    if idempotency_keys:
        env["BENCH_IDEMPOTENCY_KEYS"] = "1"
    threads = min(concurrency, 2)
    ran = subprocess.run(
        # whole seconds: wrk takes no fraction
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(duration))}s",
         "--timeout", "10s", "-s", str(LUA), url],
        env=env, capture_output=True, text=True)
    if ran.returncode:
        raise RuntimeError(f"wrk failed on {url}{path}: {ran.stdout}{ran.stderr}")
    figures = json.loads(out.read_text())
    seconds = figures["duration_us"] / 1e6
    return {
        "throughput": round(figures["requests"] / seconds, 1),
        "latency_ms": {key: round(value / 1000, 2) for key, value in figures["latency_us"].items()},
        "errors": sum(figures["errors"].values()),
        "requests": figures["requests"],
    }


def run_flow(shop, tokens, ids, duration):
    """Virtual users that place, wait until awaiting_payment, pay; in turn.

    Place to ``awaiting_payment`` is timed to the order's ``updated_at``:
    the moment the orders service moved it, on this machine's clock, which
    the driver shares. The users poll as the storefront does, so a poll
    finds out later, by up to its interval plus its own round trip (reported
    as ``seen_awaiting_payment_ms``). Polling faster to narrow that gap loads
    the shop being measured: at every 2 ms, 16 users cost the services about
    as much CPU in reads of their orders as in the orders themselves.
    """
    deadline = time.monotonic() + duration
    to_awaiting, seen_awaiting, totals, errors = [], [], [], []
    lock = threading.Lock()

    def user(token):
        chance = random.Random()
        headers = {"Authorization": f"Bearer {token}"}
        # users arrive spread over one poll interval, not all in the same
        # millisecond: in step, every user's order and payment came at once
        time.sleep(chance.uniform(0, FLOW_POLL_SECONDS))
        with requests.Session() as session:
            while time.monotonic() < deadline:
                started, placed_at = time.perf_counter(), utcnow()
                placed = session.post(f"{shop}/orders", timeout=10, headers={
                    **headers, "Idempotency-Key": uuid.uuid4().hex}, json={
                    "items": [{"product_id": chance.choice(ids), "quantity": 1}]})
                if placed.status_code != 202:
                    with lock:
                        errors.append(placed.status_code)
                    continue
                order_id = placed.json()["id"]
                status = "pending"
                while status == "pending" and time.perf_counter() - started < 10:
                    time.sleep(FLOW_POLL_SECONDS)
                    order = session.get(f"{shop}/orders/{order_id}", headers=headers,
                                        timeout=10).json()
                    status = order["status"]
                seen = time.perf_counter()
                paid = session.post(f"{shop}/orders/{order_id}/pay", timeout=10, headers={
                    **headers, "Idempotency-Key": uuid.uuid4().hex})
                with lock:
                    if status != "awaiting_payment" or paid.status_code != 200:
                        errors.append(status if paid.status_code == 200 else paid.status_code)
                        continue
                    moved_at = datetime.fromisoformat(order["updated_at"])
                    to_awaiting.append((moved_at - placed_at).total_seconds() * 1000)
                    seen_awaiting.append((seen - started) * 1000)
                    totals.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=user, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "throughput": round(len(totals) / duration, 1),
        "latency_ms": percentiles(totals),
        "to_awaiting_payment_ms": percentiles(to_awaiting),
        "seen_awaiting_payment_ms": percentiles(seen_awaiting),
        "errors": len(errors),
        "requests": len(totals),
    }


def run_expiry(stack, env, ids, count):
    """Seconds from the moment ``count`` unpaid orders fall due together until
    every one is expired and the stock it held is released, with two orders
    instances (the second started here). It includes the wait for the next
    expiry check (``EXPIRY_CHECK_SECONDS``)."""
    stack.start("orders-2")
    engines = {name: create_db_engine(env[f"{name.upper()}_DB_URI"])
               for name in ("orders", "inventory")}
    try:
        reserved_before = total_reserved(engines["inventory"])
        due_at = utcnow() + timedelta(seconds=3)  # the new instance is running by then
        insert_orders(engines["orders"], engines["inventory"], count,
                      status=AWAITING_PAYMENT, user_ids=[1],
                      products={pid: (f"Bench product {pid}", "1.90") for pid in ids},
                      expires_at=due_at)
        time.sleep(max(0.0, (due_at - utcnow()).total_seconds()))
        started = time.monotonic()
        all_expired_after = None
        unexpired = (select(func.count()).select_from(Order)
                     .where(Order.status == AWAITING_PAYMENT, Order.expires_at == due_at))
        while True:
            with engines["orders"].connect() as connection:
                left = connection.scalar(unexpired)
            held = total_reserved(engines["inventory"]) - reserved_before
            if left == 0 and all_expired_after is None:
                all_expired_after = round(time.monotonic() - started, 1)
            if (left, held) == (0, 0) or time.monotonic() - started > 10 * EXPIRY_TARGET_SECONDS:
                break
            time.sleep(0.2)
        return {"orders": count, "instances": 2, "seconds": round(time.monotonic() - started, 1),
                "all_expired_after": all_expired_after,
                "unexpired": left, "still_reserved": held,
                "check_seconds": float(env.get("EXPIRY_CHECK_SECONDS", 10))}
    finally:
        for engine in engines.values():
            engine.dispose()


def total_reserved(inventory_engine):
    with inventory_engine.connect() as connection:
        return connection.scalar(select(func.coalesce(func.sum(Stock.reserved), 0)))


class cpu_meter:
    """CPU time the stack's processes, RabbitMQ and PostgreSQL spend during a
    scenario, per request: what a request costs, whatever the machine's
    concurrency limits. (A database connection closed during the scenario
    takes its time with it: the database's figure is a floor.)"""

    def __init__(self, stack):
        self.services = {name: process.pid for name, process in stack.processes.items()}

    def __enter__(self):
        self.before = self.read()
        return self

    def __exit__(self, *exc):
        after = self.read()
        self.used_by_pid = {part: {pid: max(0.0, seconds - self.before[part].get(pid, 0.0))
                                   for pid, seconds in times.items()}
                            for part, times in after.items()}
        self.used = {part: sum(used.values()) for part, used in self.used_by_pid.items()}

    def read(self):
        parts = {"services": self.services.values(), "broker": pids_of("beam.smp"),
                 "database": pids_of("postgres")}
        return {part: {pid: cpu_seconds(pid) for pid in pids} for part, pids in parts.items()}

    def per_request(self, requests):
        """CPU ms per request by part, and by service process (which
        service to profile first)."""
        requests = max(requests, 1)
        by_service = self.used_by_pid["services"]
        return {"cpu_ms_per_request": {part: round(seconds * 1000 / requests, 3)
                                       for part, seconds in self.used.items()},
                "cpu_ms_per_request_by_service": {
                    name: round(by_service.get(pid, 0.0) * 1000 / requests, 3)
                    for name, pid in self.services.items()}}


def pids_of(name):
    found = subprocess.run(["pgrep", "-f", name], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def cpu_seconds(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values):
    if len(values) < 2:
        return {"p50": None, "p95": None, "p99": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2)}


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def make_report(args, duration, products, results, small, expiry, memory):
    for measured in (results, small):
        with_ratios(measured)
    by_key = {(result["scenario"], result["concurrency"]): result for result in results}
    targets = []
    for what, scenario, concurrency, check in TARGETS:
        result = by_key.get((scenario, concurrency))
        targets.append({"target": what, "met": bool(result and check(result))})
    services = {name: mb for name, mb in memory.items() if name.split("-")[0] in SERVICES}
    targets.append({"target": f"every service process under {MAX_RSS_MB} MB RSS after the run",
                    "met": all(mb is not None and mb < MAX_RSS_MB for mb in services.values())})
    compared = compare_with_small_data(small, by_key) if args.data_scale else None
    if compared:
        targets.append({
            "target": f"at data scale, every scenario within {SCALE_TOLERANCE}x (a search "
                      f"{SEARCH_SCALE_TOLERANCE}x) of the same "
                      f"scenario at {products:,} products, before the data was loaded "
                      "(throughput as a ratio to the floor)",
            "met": all(row["slowdown"] <= scale_tolerance(row["scenario"]) for row in compared)})
    for deep, near in (("catalogue-deep", "catalogue-pages"),
                       ("catalogue-keyset", "catalogue-pages"), ("orders-deep", "orders-pages")):
        if args.data_scale and (deep, 16) in by_key and (near, 16) in by_key:
            targets.append({
                "target": f"{deep}: deep pages within 2x of the first pages (c=16 throughput)",
                "met": 2 * by_key[(deep, 16)]["throughput"] >= by_key[(near, 16)]["throughput"]})
    if expiry:
        targets.append({
            "target": f"{expiry['orders']} orders due at once expired and their stock released "
                      f"within {EXPIRY_TARGET_SECONDS} s, two orders instances",
            "met": expiry["unexpired"] == 0 and expiry["still_reserved"] == 0
            and expiry["seconds"] <= EXPIRY_TARGET_SECONDS})
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "mode": "quick" if args.quick else "full",
        "database": args.database, "seconds_per_scenario": duration, "products": products,
        "data_scale": args.data_scale,
        "machine": {"cpus": os.cpu_count()},
        "results": results, "before_data_scale": small, "expiry": expiry, "rss_mb": memory,
        "targets": targets,
        "compared_to_small_data": compared,
        "history": json.loads((ROOT / "tools" / "harness" / "bench_history.json").read_text()),
    }


def with_ratios(results):
    """Each result's throughput as a ratio to the one-hop floor's measured
    beside it (``run_round``); the flow's, which has none beside it, to the
    floor's median run at the same concurrency."""
    median = {result["concurrency"]: result["throughput"] for result in results
              if result["scenario"] == "floor-one-hop"}
    for result in results:
        floor = result.get("floor") or median.get(result["concurrency"])
        result["ratio"] = round(result["throughput"] / floor, 2) if floor else None


def compare_with_small_data(small, by_key):
    """Each data-dependent scenario's ratio to the floor at data scale
    against its ratio earlier in the same run, before the data was loaded:
    how many times slower it is at data scale."""
    rows = []
    for result in small:
        key = (result["scenario"], result["concurrency"])
        if result["scenario"] in SCALE_COMPARED and key in by_key and by_key[key]["ratio"]:
            rows.append({"scenario": key[0], "concurrency": key[1], "small": result["ratio"],
                         "scale": by_key[key]["ratio"],
                         "slowdown": round(result["ratio"] / by_key[key]["ratio"], 2)})
    return rows


def markdown(report):
    scale = (f" among {SCALE_PRODUCTS:,}, with {SCALE_ORDERS:,} orders"
             if report.get("data_scale") else "")
    lines = [
        f"# Benchmark, {report['when']} ({report['mode']}, {report['database']}, "
        f"{report['seconds_per_scenario']:g} s per scenario, {report['products']} products{scale}, "
        f"{report['machine']['cpus']} CPUs)", "",
        "| scenario | c | req/s | x one-hop floor | p50 ms | p95 ms | p99 ms | errors "
        "| CPU ms/request: services | broker | database |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in report["results"]:
        latency, cpu = result["latency_ms"], result["cpu_ms_per_request"]
        lines.append(
            f"| {result['scenario']} | {result['concurrency']} | {result['throughput']} | "
            f"{result['ratio']} | {latency['p50']} | {latency['p95']} | {latency['p99']} | "
            f"{result['errors']} | {cpu['services']} | {cpu['broker']} | {cpu['database']} |")
    floors = [result for result in report["results"] if result["scenario"] == "floor-one-hop"]
    if floors:
        lines += ["", "The one-hop floor ran before and after each scenario, which is compared "
                  "with the mean of those two runs (req/s): " + "; ".join(
                      f"c={floor['concurrency']} {min(floor['runs'])}-{max(floor['runs'])} "
                      f"(median {floor['throughput']}, {len(floor['runs'])} runs)"
                      for floor in floors) + "."]
    flows = [result for result in report["results"] if result["scenario"] == "flow"]
    if flows:
        lines += ["", "Full flow, place to `awaiting_payment` (ms): until the order's "
                  f"`updated_at`, and until a poll every {FLOW_POLL_SECONDS * 1000:g} ms saw it:",
                  "", "| c | p50 | p95 | p99 | seen: p50 | p95 | p99 |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {flow['concurrency']} | " + " | ".join(
            str(flow[figure].get(key, "")) for figure in (
                "to_awaiting_payment_ms", "seen_awaiting_payment_ms")
            for key in ("p50", "p95", "p99")) + " |" for flow in flows]
    writes = [result for result in report["results"] if result["scenario"] in ("place", "flow")]
    if writes:
        lines += ["", "Services' CPU ms per request, by service process:", "",
                  "| scenario | c | " + " | ".join(SERVICES) + " |",
                  "|---|---:|" + "---:|" * len(SERVICES)]
        lines += [f"| {result['scenario']} | {result['concurrency']} | " + " | ".join(
            str(result.get("cpu_ms_per_request_by_service", {}).get(name, "")) for name in SERVICES)
            + " |" for result in writes]
    compared = report.get("compared_to_small_data")
    if compared:
        lines += ["", f"Against the same scenarios at {report['products']:,} products, earlier "
                  "in this run, before the data was loaded (ratios to the floor):", "",
                  f"| scenario | c | {report['products']:,} products | data scale | times slower |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {row['scenario']} | {row['concurrency']} | {row['small']} | {row['scale']} "
                  f"| {row['slowdown']} |" for row in compared]
    expiry = report.get("expiry")
    if expiry:
        lines += ["", f"Expiry: {expiry['orders']} orders due at once, {expiry['instances']} orders "
                  f"instances, checking every {expiry['check_seconds']:g} s: all expired after "
                  f"{expiry['all_expired_after']} s, their stock released after {expiry['seconds']} s "
                  f"({expiry['unexpired']} left unexpired, {expiry['still_reserved']} units "
                  f"still reserved)."]
    lines += ["", "Memory after the run (RSS, MB): " + ", ".join(
        f"{name} {mb}" for name, mb in sorted(report["rss_mb"].items())), "",
        "| target | met |", "|---|---|"]
    lines += [f"| {target['target']} | {'yes' if target['met'] else 'NO'} |"
              for target in report["targets"]]
    lines += ["", "## History", ""]
    lines += [f"- {entry['date']}: {entry['change']} {entry['effect']}"
              for entry in report["history"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
