"""An order storm against a shop of separate ``nameko run`` processes, and the
checks that nothing was lost: shared by the crash test (tools/harness/chaos.py),
the scale-out test (tools/harness/scale.py), the cluster test and the upgrade
test (tools/harness/upgrade.py), whose instances run another revision.

The shop runs in its own RabbitMQ virtual host (``shop-<run>``) and on its own
databases: fresh SQLite files under var/<run>/, or the ``shop_<run>_<service>``
PostgreSQL databases, which are emptied first. Migrations run once, before any
service starts. Service logs go to var/<run>/<instance>.log.

The customers are careful clients: each order, payment and cancellation goes
out with a fresh Idempotency-Key, and is sent again with the same key after no
answer, a 5xx or a 409 request_in_progress. The checks then count duplicate
orders: orders beyond one per key that placed an order.
"""
import email.policy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path

import requests
import urllib3
from sqlalchemy import text

from common.data.db import create_db_engine
from common.data.migrations import upgrade
from tools.dlq import DeadLetterQueue
from tools.launch import DOMAIN_SERVICES, SERVICES, nameko_run_command

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = "guest:guest"
PG_URI = os.environ.get("PG_URI", "postgresql://postgres@127.0.0.1:5432")
ADMIN = ("storm-admin", "storm-admin-password")
PRODUCTS, INITIAL_STOCK = 10, 40
SETTLE_TIMEOUT = 120
# how long a customer goes on retrying one request, and the longest it waits between tries
RETRY_SECONDS, MAX_RETRY_WAIT = 30, 2.0
# the mail (notifications) each order owes its customer, by the status it ended in
MAIL_OF_STATUS = {"paid": "receipt", "rejected": "rejection", "cancelled": "cancellation",
                  "expired": "expiry"}


@dataclass(frozen=True)
class Release:
    """A checkout of the shop to run services from: its folder, and the
    virtualenv whose ``nameko`` runs them (tools/harness/upgrade.py builds
    others)."""

    root: Path
    bin: Path

    def nameko_run(self, service):
        return [str(self.bin / "nameko"), "run", "--config", "config.yaml", f"{service}.service"]


THIS_CHECKOUT = Release(ROOT, Path(nameko_run_command("users", "config.yaml")[0]).parent)


@dataclass
class BrokerNodes:
    """Where the RabbitMQ node(s) listen: the local broker by default, or a
    cluster's nodes (tools/harness/cluster.py). With several, each instance of a
    service gets every node in its AMQP_URI (kombu's failover list), starting
    at a different one, so that the connections spread over the nodes."""

    amqp_ports: tuple = (5672,)
    management_ports: tuple = (15672,)

    def management_api(self):
        """The API of the first node that answers."""
        for port in self.management_ports:
            api = f"http://{CREDENTIALS}@127.0.0.1:{port}/api"
            if get_status(f"{api}/overview") == 200:
                return api
        raise RuntimeError("no RabbitMQ node's management API answers")

    def amqp_uri(self, vhost, first=0):
        path = urllib.parse.quote(vhost, safe="")
        ports = self.amqp_ports[first:] + self.amqp_ports[:first]
        return ";".join(f"amqp://{CREDENTIALS}@127.0.0.1:{port}/{path}" for port in ports)


LOCAL_BROKER = BrokerNodes()


def run_test(title, run, args, instances=None, during_storm=None, after_settling=None,
             broker=LOCAL_BROKER, postgres=None, restock_every=None):
    """Start the shop, set up the catalogue, run the storm (``during_storm(stack,
    duration, shop)`` in a thread beside it), wait for it to settle, check; then
    stop the shop, write var/<run>/report.json, print it and exit 0 or 1.
    ``after_settling(stack, report)`` adds its own figures and checks."""
    env = prepare(run, args, broker, postgres=postgres)
    stack = Stack(run, env, instances, broker)
    try:
        stack.start_all()
        shop = Shop(stack.gateway_urls())
        product_ids = shop.set_up()
        print(f"storm: {args.users} customers for {args.duration:g} s on "
              f"{', '.join(sorted(stack.processes))}", flush=True)
        beside = threading.Thread(
            target=during_storm or (lambda stack, duration, shop: None),
            args=(stack, args.duration, shop), daemon=True)
        beside.start()
        storm = shop.storm(product_ids, args.users, args.duration, restock_every=restock_every)
        beside.join()
        report = settle_and_check(env, storm, product_ids)
        if after_settling:
            after_settling(stack, report)
        report["crashed_services"] = stack.crashed()
        report["checks"]["no service crashed"] = not report["crashed_services"]
        report["passed"] = all(report["checks"].values())
    finally:
        stack.stop_all()
    (stack.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(title, report)
    sys.exit(0 if report["passed"] else 1)


def add_arguments(parser, users, duration):
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--users", type=int, default=users, help="concurrent customers")
    parser.add_argument("--duration", type=float, default=duration, help="storm seconds")
    parser.add_argument("--port", type=int, default=8099,
                        help="the gateway's port (a second gateway takes the next one)")


class LocalPostgres:
    """The PostgreSQL server at PG_URI (the system's, on 5432)."""

    def uri(self, database):
        return f"{PG_URI}/{database}"

    def database_created(self, database):
        """Returns once ``database`` may be connected to (a cluster waits for
        its standbys)."""


def prepare(run, args, broker=LOCAL_BROKER, migrate_databases=True, postgres=None):
    """Fresh databases (migrated, unless ``migrate_databases`` is false) and
    a fresh vhost for ``run``; the environment every service gets. On
    PostgreSQL, the databases are ``postgres``'s (anything with ``uri(database)``
    and ``database_created(database)``, such as tools.harness.patroni's
    cluster), the local server's by default."""
    postgres = postgres or LocalPostgres()
    out = ROOT / "var" / run
    out.mkdir(parents=True, exist_ok=True)
    vhost = f"shop-{run}"
    for old_log in out.glob("*.log"):
        old_log.unlink()
    uris = {}
    for name in DOMAIN_SERVICES:
        if args.database == "postgresql":
            uris[name] = postgres.uri(f"shop_{run}_{name}")
            ensure_pg_database(postgres, f"shop_{run}_{name}")
            postgres.database_created(f"shop_{run}_{name}")
            engine = create_db_engine(uris[name])
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        else:
            path = out / f"{name}.db"
            for leftover in out.glob(f"{name}.db*"):
                leftover.unlink()
            uris[name] = f"sqlite:///{path}"
        if migrate_databases:
            upgrade(name, uris[name])
    shutil.rmtree(out / "mail", ignore_errors=True)
    api = broker.management_api()
    requests.delete(f"{api}/vhosts/{vhost}", timeout=10)
    requests.put(f"{api}/vhosts/{vhost}", timeout=10).raise_for_status()
    requests.put(f"{api}/permissions/{vhost}/guest", timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return {
        **os.environ,
        "AMQP_URI": broker.amqp_uri(vhost),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{args.port}",
        **{f"{name.upper()}_DB_URI": uri for name, uri in uris.items()},
        "MAIL_DIRECTORY": str(out / "mail"),
        # several instances of a service on this machine: each its own metrics port
        **{f"{name.upper()}_METRICS_PORT": "0" for name in uris},
        "SHOP_ADMIN_USERNAME": ADMIN[0], "SHOP_ADMIN_PASSWORD": ADMIN[1],
        # a dead service is noticed quickly, and trial calls come soon after
        "RPC_TIMEOUT_SECONDS": "3", "RPC_BREAKER_RESET_SECONDS": "2",
    }


def ensure_pg_database(postgres, name):
    engine = create_db_engine(postgres.uri("postgres")).execution_options(
        isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


class Stack:
    """The services as processes; ``instances`` says how many of each
    (one by default), named ``orders``, or ``orders-1``, ``orders-2``...
    The n-th gateway listens on the port after the (n-1)-th's."""

    def __init__(self, run, env, instances=None, broker=LOCAL_BROKER, release=None):
        self.out = ROOT / "var" / run
        self.vhost = f"shop-{run}"
        self.env = env
        self.broker = broker
        self.processes = {}
        self.instances = {name: (instances or {}).get(name, 1) for name in SERVICES}
        # what each instance runs: this checkout, unless told otherwise
        self.release = release or THIS_CHECKOUT
        self.releases = {}
        # once stop_all has begun, nothing starts (a harness thread restarting
        # a service as the harness stops would leave it running)
        self.lock = threading.Lock()
        self.stopped = False
        stop_on_sigterm()

    def instance_names(self, name):
        count = self.instances[name]
        return [name] if count == 1 else [f"{name}-{n}" for n in range(1, count + 1)]

    def instance_env(self, instance):
        service, _, number = instance.partition("-")
        index = int(number or 1) - 1
        host, port = self.env["WEB_SERVER_ADDRESS"].rsplit(":", 1)
        return {
            **self.env,
            "AMQP_URI": self.broker.amqp_uri(self.vhost, first=(
                SERVICES.index(service) + index) % len(self.broker.amqp_ports)),
            "WEB_SERVER_ADDRESS": f"{host}:{int(port) + index}" if service == "gateway"
            else self.env["WEB_SERVER_ADDRESS"],
        }

    def gateway_urls(self):
        return [f"http://{self.instance_env(instance)['WEB_SERVER_ADDRESS']}"
                for instance in self.instance_names("gateway")]

    def start(self, instance, release=None):
        """Start ``instance`` of ``release`` (by default, what it ran before,
        or the stack's release)."""
        service = instance.split("-")[0]
        release = self.releases[instance] = release or self.releases.get(instance, self.release)
        with self.lock:
            if self.stopped:
                return
            log = open(self.out / f"{instance}.log", "a")  # a restart appends
            self.processes[instance] = subprocess.Popen(
                release.nameko_run(service), cwd=release.root,
                env=self.instance_env(instance),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_all(self):
        """Every instance of every service the stack's release holds (an
        older one may lack a service added since)."""
        for name in SERVICES:
            if (self.release.root / name).is_dir():
                for instance in self.instance_names(name):
                    self.start(instance)
        self.wait_until_ready()

    def wait_until_ready(self, timeout=60):
        for gateway in self.gateway_urls():
            wait(lambda: get_status(f"{gateway}/health/ready") == 200, timeout,
                 "the shop to be ready")

    def crashed(self):
        """The services that exited without being killed on purpose."""
        return sorted(name for name, process in self.processes.items()
                      if process.poll() is not None)

    def kill(self, name):
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop_all(self):
        with self.lock:
            self.stopped = True
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

class Shop:
    """The storm's side: customers using the HTTP API, spread over the
    gateways at ``base_urls``."""

    def __init__(self, base_urls):
        self.base_urls = base_urls
        self.statuses = Counter()
        self.retries = 0
        self.failovers = 0
        self.accepted = {}  # order id -> quantity per product
        self.restocked = Counter()  # product id -> units added during the storm
        self.deadline = None  # when the customers stop (storm() sets it; others may move it)
        self.resting = set()  # gateways taken out of rotation, as a load balancer would
        self.lock = threading.Lock()
        self.local = threading.local()

    def call(self, method, path, token=None, headers=None, **kwargs):
        """One request, to the customer's gateway; a gateway that refuses the
        connection (stopped) is passed over for the next, as a load balancer
        would: the request never reached it."""
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        first = getattr(self.local, "base_url", self.base_urls[0])
        gateways = self.base_urls[self.base_urls.index(first):] + \
            self.base_urls[:self.base_urls.index(first)]
        in_rotation = [url for url in gateways if url not in self.resting]
        for base_url in in_rotation or gateways:
            try:
                response = requests.request(
                    method, base_url + path, headers=headers, timeout=15, **kwargs)
                break
            except requests.ConnectionError as exc:
                if not refused(exc):
                    return self._unanswered()
                with self.lock:
                    self.failovers += 1
            except requests.RequestException:
                return self._unanswered()
        else:
            return self._unanswered()
        status = response.status_code
        if status == 503 and "Retry-After" not in response.headers:
            status = "503 without Retry-After"
        with self.lock:
            self.statuses[status] += 1
        return response

    def answers(self):
        """How many answers of each status (or "no answer") so far: the
        answers of a window are ``shop.answers() - answers_at_its_start``."""
        with self.lock:
            return Counter(self.statuses)

    def _unanswered(self):
        with self.lock:
            self.statuses["no answer"] += 1
        return None

    def call_once(self, operation, method, path, token, **kwargs):
        """A careful client's request: a fresh Idempotency-Key, and the same
        key again after no answer, a 5xx or a 409 request_in_progress, for up
        to RETRY_SECONDS. Answers the last response (None if none came)."""
        headers = {"Idempotency-Key": f"{operation}-{uuid.uuid4().hex}"}
        give_up = time.monotonic() + RETRY_SECONDS
        while True:
            response = self.call(method, path, token, headers=headers, **kwargs)
            if not worth_retrying(response) or time.monotonic() > give_up:
                return response
            with self.lock:
                self.retries += 1
            retry_after = float(response.headers.get("Retry-After", 0)) if response else 0
            time.sleep(min(max(retry_after, 0.2), MAX_RETRY_WAIT))

    def token(self, username, password):
        response = self.call("POST", "/login", json={"username": username, "password": password})
        response.raise_for_status()
        return response.json()["access_token"]

    def set_up(self):
        # the users service creates the admin just after it starts consuming
        credentials = {"username": ADMIN[0], "password": ADMIN[1]}
        wait(lambda: getattr(self.call("POST", "/login", json=credentials), "status_code", None)
             == 200, 30, "the admin account")
        admin = self.token(*ADMIN)
        product_ids = []
        for number in range(PRODUCTS):
            created = self.call("POST", "/products", admin,
                                json={"name": f"Chaos product {number}", "price": "1.50"})
            created.raise_for_status()
            product_id = created.json()["id"]
            self.stock_new_product(admin, product_id)
            product_ids.append(product_id)
        return product_ids

    def stock_new_product(self, admin, product_id, timeout=15):
        """Put INITIAL_STOCK units of a product just created in stock. Inventory
        creates its stock record when it hears product_created: until then it
        answers 404 (an older release most of all, which is slower to hear)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.call("POST", f"/inventory/{product_id}", admin,
                                 json={"quantity": INITIAL_STOCK})
            if response.status_code != 404 or time.monotonic() > deadline:
                response.raise_for_status()
                return
            time.sleep(0.1)

    def storm(self, product_ids, users, duration, restock_every=None):
        """``users`` customers for ``duration`` seconds (or until ``deadline``
        is moved); with ``restock_every``, the admin restocks a product that often."""
        customers = []
        for number in range(users):
            username = f"customer{number}"
            self.call("POST", "/register", json={
                "username": username, "email": f"{username}@example.com",
                "password": "storm-password"})
            customers.append(self.token(username, "storm-password"))
        self.deadline = time.monotonic() + duration
        threads = [threading.Thread(target=self.customer, args=(
                       token, product_ids, self.base_urls[number % len(self.base_urls)]))
                   for number, token in enumerate(customers)]
        if restock_every:
            threads.append(threading.Thread(
                target=self.restocker, args=(self.token(*ADMIN), product_ids, restock_every)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"accepted": dict(self.accepted), "statuses": dict(self.statuses),
                "retries": self.retries, "failovers": self.failovers,
                "restocked": dict(self.restocked)}

    def restocker(self, token, product_ids, every):
        """Adds stock to one product after another, so that most orders are
        reserved rather than rejected. Only what was answered 200 counts."""
        chance = random.Random()
        while time.monotonic() < self.deadline:
            product_id, quantity = chance.choice(product_ids), chance.randint(10, 30)
            answer = self.call("POST", f"/inventory/{product_id}", token,
                               json={"quantity": quantity})
            if answer is not None and answer.status_code == 200:
                with self.lock:
                    self.restocked[product_id] += quantity
            time.sleep(every)

    def customer(self, token, product_ids, base_url):
        self.local.base_url = base_url
        chance = random.Random()
        while time.monotonic() < self.deadline:
            lines = {pid: chance.randint(1, 3) for pid in chance.sample(product_ids, chance.randint(1, 3))}
            placed = self.call_once("place", "POST", "/orders", token, json={
                "items": [{"product_id": p, "quantity": q} for p, q in lines.items()]})
            if placed is None or placed.status_code != 202:
                time.sleep(0.2)
                continue
            order_id = placed.json()["id"]
            with self.lock:
                self.accepted[order_id] = lines
            status = self.wait_for_answer(token, order_id)
            if status == "awaiting_payment":
                choice = chance.random()
                if choice < 0.6:
                    self.call_once("pay", "POST", f"/orders/{order_id}/pay", token)
                elif choice < 0.85:
                    self.call_once("cancel", "POST", f"/orders/{order_id}/cancel", token)

    def wait_for_answer(self, token, order_id):
        while time.monotonic() < self.deadline:
            response = self.call("GET", f"/orders/{order_id}", token)
            if response is not None and response.status_code == 200:
                status = response.json()["status"]
                if status != "pending":
                    return status
            time.sleep(0.1)
        return None


def refused(exc):
    """Whether a request failed because its connection was refused, before
    anything was sent."""
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", None), urllib3.exceptions.NewConnectionError)


def worth_retrying(response):
    if response is None or response.status_code >= 500:
        return True
    return response.status_code == 409 and response.json().get("error") == "request_in_progress"


def settle_and_check(env, storm, product_ids, count_duplicates=True, count_mails=True):
    """Wait until no order is pending, no event waits to be published and
    (``count_mails``) every order's mail is sent, then check every invariant.
    ``count_duplicates=False`` where some orders went through a gateway that
    takes no Idempotency-Key (an older release); ``count_mails=False`` where
    the notifications service started after the first orders (an upgrade
    from a release without it)."""
    engines = {name: create_db_engine(env[f"{name.upper()}_DB_URI"])
               for name in ("orders", "inventory", *(["notifications"] if count_mails else []))}
    started = time.monotonic()
    settled = False
    while time.monotonic() - started < SETTLE_TIMEOUT:
        state = read_state(engines)
        if state["pending"] == 0 and state["unsent_events"] == 0 and \
                state["reserved"] == state["awaiting"] and \
                (not count_mails or mails_owed(state) == state["mails"]):
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
    restocked = storm.get("restocked", {})
    unconserved = {pid: stock.get(pid) for pid in product_ids
                   if stock.get(pid, {}).get("on_hand", 0) + state["sold"].get(pid, 0)
                   != INITIAL_STOCK + restocked.get(pid, 0)}
    mismatched = {pid: (row["reserved"], state["awaiting"].get(pid, 0))
                  for pid, row in stock.items() if row["reserved"] != state["awaiting"].get(pid, 0)}
    server_errors = server_errors_but_503(storm["statuses"])
    duplicates = len(state["orders"]) - len(state["orders_placed_by_a_key"]) \
        if count_duplicates else None
    mails = check_mails(state, env["MAIL_DIRECTORY"]) if count_mails else None
    checks = {
        "orders lost": len(lost) == 0,
        **({"duplicate orders": duplicates == 0} if count_duplicates else {}),
        "only 503 with Retry-After as server errors": not server_errors,
        "orders stuck pending": state["pending"] == 0,
        "negative or over-reserved stock": not broken_stock,
        "stock conservation": not unconserved,
        "reserved matches orders awaiting payment": not mismatched,
        "dead letters": dead_letters == 0,
        **({"one mail per order paid, rejected, cancelled or expired": mails["match"]}
           if count_mails else {}),
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
        "duplicate_orders": duplicates,
        "requests_retried": storm["retries"],
        "units_restocked": sum(restocked.values()),
        "gateway_failovers": storm.get("failovers", 0),
        "orders_by_status": dict(Counter(state["orders"].values())),
        "broken_stock": broken_stock,
        "unconserved_stock": unconserved,
        "reserved_mismatch": mismatched,
        "dead_letters": dead_letters,
        "mails": mails,
        "unsent_events": state["unsent_events"],
        "settle_seconds": round(settle_seconds, 1),
        "http_answers": {str(status): n for status, n in storm["statuses"].items()},
        "server_errors_but_503": server_errors,
    }


def mails_owed(state):
    """``{(kind, order id)}``: the mail each order owes, by its status."""
    return {(MAIL_OF_STATUS[status], order_id) for order_id, status in state["orders"].items()
            if status in MAIL_OF_STATUS}


def check_mails(state, directory):
    """The mails the notifications service recorded as sent, against the
    orders that owe one, and the .eml files it wrote: one file per mail
    recorded (a mail sent again after a crash has the same Message-ID, so
    the same file)."""
    owed, recorded = mails_owed(state), state["mails"]
    files = set()
    for path in Path(directory).glob("*.eml"):
        with path.open("rb") as message:
            files.add(BytesParser(policy=email.policy.default).parse(
                message, headersonly=True)["Message-ID"])
    by_kind = Counter(kind for kind, _ in recorded)
    return {
        "match": owed == recorded and files == set(state["mail_message_ids"]),
        "sent_by_kind": dict(by_kind),
        "files": len(files),
        "owed_but_not_sent": len(owed - recorded),
        "sent_but_not_owed": len(recorded - owed),
        "files_not_recorded": len(files - set(state["mail_message_ids"])),
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
        # every order of the storm is placed with a key ("place-..."), whose answer names it
        placed_by_a_key = {
            (json.loads(answer) if isinstance(answer, str) else answer)["id"]
            for answer in connection.execute(text(
                "SELECT answer FROM idempotency_keys WHERE key LIKE 'place-%'")).scalars()}
    with engines["inventory"].connect() as connection:
        stock = {row.product_id: {"on_hand": row.on_hand, "reserved": row.reserved}
                 for row in connection.execute(
                     text("SELECT product_id, on_hand, reserved FROM stock"))}
        unsent += connection.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    sent = []
    if "notifications" in engines:
        with engines["notifications"].connect() as connection:
            sent = connection.execute(text(
                "SELECT kind, about_id, message_id FROM mails WHERE sent_at IS NOT NULL")).all()
    return {
        "orders": orders,
        "orders_placed_by_a_key": placed_by_a_key,
        "pending": sum(1 for status in orders.values() if status == "pending"),
        "sold": {pid: q for (status, pid), q in held.items() if status == "paid"},
        "awaiting": {pid: q for (status, pid), q in held.items() if status == "awaiting_payment"},
        "reserved": {pid: row["reserved"] for pid, row in stock.items() if row["reserved"]},
        "stock": stock,
        "unsent_events": unsent,
        # the welcomes are about users, not orders
        "mails": {(kind, about_id) for kind, about_id, _ in sent if kind != "welcome"},
        "mail_message_ids": [message_id for _, _, message_id in sent],
    }


def server_errors_but_503(statuses):
    """The answers among ``statuses`` that fail a storm: a client may be told
    to come back later (503 with Retry-After) while a service, the broker
    or the database is away; any other server error, or no answer at all,
    is a failure."""
    return {str(status): count for status, count in statuses.items()
            if not isinstance(status, int) or (status >= 500 and status != 503)}


def print_report(title, report):
    print(f"\n{title}")
    print(f"  orders accepted            {report['orders_accepted']}")
    print(f"  orders settled             {report['orders_settled']}")
    print(f"  orders lost                {len(report['orders_lost'])}")
    print(f"  orders stuck pending       {report['orders_stuck_pending']}")
    if report["duplicate_orders"] is None:
        print(f"  duplicate orders           not counted: an older gateway takes no keys "
              f"({report['requests_retried']} retried)")
    else:
        print(f"  duplicate orders           {report['duplicate_orders']} "
              f"({report['requests_retried']} retried with their key)")
    if report["units_restocked"]:
        print(f"  units restocked            {report['units_restocked']}")
    if report["gateway_failovers"]:
        print(f"  refused, sent to the other gateway  {report['gateway_failovers']}")
    print(f"  orders by status           {report['orders_by_status']}")
    print(f"  negative stock             {report['broken_stock'] or 'none'}")
    print(f"  stock conservation         "
          f"{'holds' if not report['unconserved_stock'] else report['unconserved_stock']}")
    print(f"  reserved = awaiting payment "
          f"{'yes' if not report['reserved_mismatch'] else report['reserved_mismatch']}")
    print(f"  dead letters               {report['dead_letters']}")
    if report["mails"] is not None:
        mails = report["mails"]
        print(f"  mails sent, by kind        {mails['sent_by_kind']} "
              f"({mails['files']} .eml files)")
        print(f"  mails owed but not sent    {mails['owed_but_not_sent']}, "
              f"sent but not owed {mails['sent_but_not_owed']}, "
              f"files not recorded {mails['files_not_recorded']}")
    print(f"  time to settle             {report['settle_seconds']} s")
    print(f"  services that crashed      {', '.join(report['crashed_services']) or 'none'}")
    for instance, handled in report.get("handled_per_instance", {}).items():
        print(f"  {instance:<27}handled {handled} messages")
    for figure, value in report.get("failover", {}).items():
        print(f"  {figure.replace('_', ' '):<27}{value}")
    print(f"  HTTP answers               {report['http_answers']}")
    print(f"  server errors but 503      {report['server_errors_but_503'] or 'none'}")
    failed = [name for name, ok in report["checks"].items() if not ok]
    print("PASSED" if not failed else f"FAILED: {', '.join(failed)}")


def stop_on_sigterm():
    """A harness stopped by SIGTERM (kill, timeout) leaves through the
    ``finally`` that stops what it started, as on Ctrl-C, instead of leaving
    it running with its ports taken."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def time_until_answering(stack, since, timeout=60):
    """Seconds from ``since`` until every gateway's readiness check (an RPC
    ping of every domain service) answers 200 again; None if one did not
    within ``timeout``."""
    ready = set()

    def probe(url):
        answer = "no answer"
        while time.monotonic() - since < timeout:
            try:
                response = requests.get(f"{url}/health/ready", timeout=5)
                if response.status_code == 200:
                    ready.add(url)
                    return
                answer = response.json().get("services", response.text)
            except requests.RequestException as exc:
                answer = repr(exc)
            time.sleep(0.2)
        print(f"  {url} not ready after {timeout} s: {answer}", flush=True)

    probes = [threading.Thread(target=probe, args=(url,)) for url in stack.gateway_urls()]
    for thread in probes:
        thread.start()
    for thread in probes:
        thread.join()
    if len(ready) < len(probes):
        return None
    return time.monotonic() - since


def get_status(url):
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def wait(condition, timeout, what):
    """Until ``condition()``; exits after ``timeout`` seconds, naming ``what``
    (a string, or a function that gives one then)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"Error: timed out after {timeout} s waiting for "
                     f"{what() if callable(what) else what}")
        time.sleep(0.3)
