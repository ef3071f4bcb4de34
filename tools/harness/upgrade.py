"""The upgrade test (``make upgrade-test UPGRADE_FROM=<revision>``): a rolling
upgrade from an older revision of the shop to this checkout, under an order
storm, on PostgreSQL, losing nothing and answering no 5xx.

1. builds the old revision in var/upgrade/<revision>/ (``git archive`` and a
   virtualenv of its own, kept for the next run), and starts the whole shop
   at that revision: two instances of each domain service and two gateways;
2. starts the order storm, with restocks, so that most orders are reserved
   and paid rather than rejected; customers spread over the two gateways and
   pass over one that refuses connections, as a load balancer would;
3. applies this checkout's migrations while the old revision serves;
4. replaces the instances one at a time, each domain service in turn and the
   gateways last: SIGTERM the old instance, start the new one, wait until it
   is ready (consuming its RPC queue; a gateway: ready on /health/ready); a
   service the old revision did not have starts here, one instance at a time;
5. rolls orders back to the old revision and forward again;
6. stops the storm, waits for the shop to settle, and checks what the crash
   test checks, and that no answer was a 5xx (there are always two
   instances); it prints which revision each instance ran in each phase.

It cleans up (stops every process) also on failure or Ctrl-C. Logs go to
var/upgrade/<instance>.log, the figures to var/upgrade/report.json.
"""
import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib

from kombu import Connection

from common.build import build_info
from common.data.migrations import upgrade as migrate
from tools.harness.storm import (
    ROOT, THIS_CHECKOUT, Release, Shop, Stack, get_status, prepare, print_report,
    settle_and_check, wait)
from tools.launch import DOMAIN_SERVICES, SERVICES

RUN = "upgrade"
INSTANCES = {name: 2 for name in SERVICES}
# the revision before the first release, where upgrades are tested from until one is tagged
FIRST_BASE = "9593e87"
# what make release records: its last change is a release's commit
RELEASED_CONTRACTS = "contracts/released.asyncapi.json"
# seconds of storm between two steps of the upgrade
STEP_SECONDS = 3
RESTOCK_EVERY = 0.1
# how long a gateway is out of rotation before it is stopped: a load balancer's
# part (Kubernetes: leaving the endpoints, and the preStop hook's sleep)
OUT_OF_ROTATION_SECONDS = 2
# the line common/container.py logs first: "orders 0.2.0 (revision 1a2b3c4d5e6f)"
BUILD_LINE = re.compile(r"\b(\w+) (\d+\.\d+\.\d+\S*) \(revision (\w+)\)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=12, help="concurrent customers")
    parser.add_argument("--port", type=int, default=8097,
                        help="the first gateway's port (the second takes the next one)")
    parser.add_argument("--from", dest="base", default=None,
                        help=f"the revision to upgrade from (default: the last release "
                             f"before HEAD, else {FIRST_BASE})")
    args = parser.parse_args(argv)
    args.database = "postgresql"
    base = args.base or last_release() or FIRST_BASE
    old = OldRevision(base)
    print(f"upgrade test: from {old.label} to {NEW_LABEL}", flush=True)
    old.build()
    env = prepare(RUN, args, migrate_databases=False)
    env["SHUTDOWN_DRAIN_SECONDS"] = "1"  # the new gateways drain; the old ignore it
    env["PYTHONUNBUFFERED"] = "1"  # each build line is in its log once the instance runs
    old.migrate(env)
    stack = Stack(RUN, env, INSTANCES, release=old.release)
    phases = Phases(stack, old)
    try:
        stack.start_all()
        phases.record("started")
        shop = Shop(stack.gateway_urls())
        product_ids = shop.set_up()
        upgrading = threading.Thread(target=roll, args=(stack, shop, old, phases), daemon=True)
        upgrading.start()
        # the storm runs until the upgrade is over (roll() moves its deadline)
        storm = shop.storm(product_ids, args.users, 3600, restock_every=RESTOCK_EVERY)
        upgrading.join()
        # an order placed through a gateway that takes no key cannot be told from a duplicate
        # the first orders were placed before notifications ran: their mails are not owed
        report = settle_and_check(env, storm, product_ids,
                                  count_duplicates=old.takes_idempotency_keys,
                                  count_mails=False)
        server_errors = {status: count for status, count in storm["statuses"].items()
                         if not isinstance(status, int) or status >= 500}
        report["checks"]["no 5xx answer, and none unanswered"] = not server_errors
        report["checks"]["every step done"] = phases.completed
        report["checks"]["each new instance reports this build"] = phases.reported_right()
        report["crashed_services"] = stack.crashed()
        report["checks"]["no service crashed"] = not report["crashed_services"]
        report["phases"] = phases.table
        report["passed"] = all(report["checks"].values())
    finally:
        stack.stop_all()
    (stack.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(f"Upgrade test: {old.label} -> {NEW_LABEL}", report)
    phases.print()
    sys.exit(0 if report["passed"] else 1)


def roll(stack, shop, old, phases):
    """The upgrade, beside the storm; ends the storm when it is done."""
    try:
        wait(lambda: shop.deadline is not None, 120, "the storm to start")
        time.sleep(STEP_SECONDS)
        note("applying this checkout's migrations while the old revision serves")
        for name in DOMAIN_SERVICES:
            migrate(name, stack.env[f"{name.upper()}_DB_URI"])
        phases.record("migrated")
        time.sleep(STEP_SECONDS)
        for name in (*DOMAIN_SERVICES, "gateway"):
            for instance in stack.instance_names(name):
                replace(stack, shop, instance, THIS_CHECKOUT)
            phases.record(f"{name} upgraded")
            time.sleep(STEP_SECONDS)
        for release, phase in ((old.release, "orders rolled back"),
                               (THIS_CHECKOUT, "orders forward again")):
            for instance in stack.instance_names("orders"):
                replace(stack, shop, instance, release)
            phases.record(phase)
            time.sleep(STEP_SECONDS)
        phases.completed = True
    except SystemExit as exc:  # a step timed out (storm.wait)
        note(f"stopped: {exc}")
    finally:
        shop.deadline = time.monotonic()


def replace(stack, shop, instance, release):
    """SIGTERM ``instance``, start it again from ``release``, and wait until
    it is ready. A gateway is first taken out of the customers' rotation,
    and put back once the new one is ready."""
    note(f"{instance}: SIGTERM, then start it at {label_of(release)}")
    url = None
    if instance.startswith("gateway"):
        url = f"http://{stack.instance_env(instance)['WEB_SERVER_ADDRESS']}"
        shop.resting.add(url)
        time.sleep(OUT_OF_ROTATION_SECONDS)
    process = stack.processes.get(instance)  # None: a service the old release lacks
    if process is not None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            note(f"{instance} did not stop within 30 s; killed")
            process.kill()
            process.wait()
    stack.start(instance, release)
    wait_until_ready(stack, instance)
    shop.resting.discard(url)


def wait_until_ready(stack, instance, timeout=60):
    service = instance.split("-")[0]
    if service == "gateway":
        url = f"http://{stack.instance_env(instance)['WEB_SERVER_ADDRESS']}/health/ready"
        wait(lambda: get_status(url) == 200, timeout, f"{instance} to be ready")
        return
    # every instance consumes its service's RPC queue once it has started
    # (asked of the queue itself: the management API's figures lag by seconds)
    amqp_uri = stack.env["AMQP_URI"].split(";")[0]
    # those started so far: a service new in this release starts one instance at a time
    running = sum(name in stack.processes for name in stack.instance_names(service))
    seen = []

    def consuming():
        seen.append(consumers(amqp_uri, f"rpc-{service}"))
        return seen[-1] == running

    wait(consuming, timeout, lambda: f"{instance} to consume rpc-{service} (consumers "
                                     f"seen: {sorted(set(map(str, seen)))})")


def consumers(amqp_uri, queue):
    """How many consumers ``queue`` has now."""
    try:
        with Connection(amqp_uri, connect_timeout=5) as connection:
            return connection.default_channel.queue_declare(queue, passive=True).consumer_count
    except Exception as exc:  # not there yet, or the broker is busy: not ready
        return f"{type(exc).__name__}: {exc}"


class OldRevision:
    """The shop at an older ``revision``, in var/upgrade/<revision>/: its
    source (``git archive``) and a virtualenv with its pinned dependencies."""

    def __init__(self, revision):
        self.sha = git("rev-parse", "--verify", f"{revision}^{{commit}}")
        self.home = ROOT / "var" / RUN / self.sha[:12]
        self.source = self.home / "src"
        self.release = Release(self.source, self.home / "venv" / "bin")
        self.version = "?"
        pyproject = git_show(self.sha, "pyproject.toml")
        if pyproject:
            self.version = tomllib.loads(pyproject)["project"]["version"]
        self.label = f"{self.version} ({self.sha[:12]})"
        self.takes_idempotency_keys = git_show(self.sha, "orders/idempotency.py") is not None

    def build(self):
        built = self.home / ".built"
        if built.exists():
            return
        note(f"building {self.label} in {self.home.relative_to(ROOT)}")
        self.source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", self.sha], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(self.source)], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.home / "venv")], check=True)
        subprocess.run([str(self.release.bin / "pip"), "install", "--quiet",
                        "-c", "constraints.txt", "-e", "."], cwd=self.source, check=True)
        built.touch()

    def migrate(self, env):
        note(f"migrating the databases with {self.label}'s migrations")
        subprocess.run([str(self.release.bin / "python"), "-m", "tools.migrate"],
                       cwd=self.source, env=env, check=True)


class Phases:
    """Which revision each instance ran in each phase: as the harness
    started it, and as the instance itself reported in its first log line."""

    def __init__(self, stack, old):
        self.stack = stack
        self.old = old
        self.table = {}  # phase -> instance -> label
        self.completed = False
        self.reported = {}  # instance -> what its latest start logged

    def record(self, phase):
        row = {}
        for instance in sorted(self.stack.processes):
            release = self.stack.releases[instance]
            if release == THIS_CHECKOUT:
                reported = self.reported_by(instance)
                self.reported[instance] = reported
                row[instance] = reported or "this checkout (no build line)"
            else:
                row[instance] = self.old.label
        self.table[phase] = row
        note(f"phase: {phase}")

    def reported_by(self, instance):
        """The build the instance's latest start logged, as "0.2.0 (1a2b3c)"."""
        text = (self.stack.out / f"{instance}.log").read_text(errors="replace")
        found = BUILD_LINE.findall(text)
        return f"{found[-1][1]} ({found[-1][2]})" if found else None

    def reported_right(self):
        return bool(self.reported) and all(
            label == NEW_LABEL for instance, label in self.reported.items()
            if self.stack.releases[instance] == THIS_CHECKOUT)

    def print(self):
        instances = sorted({i for row in self.table.values() for i in row})
        width = max(len(phase) for phase in self.table) + 2
        print("\nWhat each instance ran:")
        print(" " * width + "  ".join(f"{i:<11}" for i in instances))
        short = {self.old.label: "old", NEW_LABEL: "new"}
        for phase, row in self.table.items():
            print(f"{phase:<{width}}" + "  ".join(
                f"{short.get(row.get(i), row.get(i, '-')):<11}" for i in instances))
        print(f"(old: {self.old.label}; new: {NEW_LABEL})")


def label_of(release):
    return NEW_LABEL if release == THIS_CHECKOUT else str(release.root.parent.name)


NEW_LABEL = f"{build_info()['version']} ({build_info()['revision']})"


def last_release():
    """The last release before HEAD, or None: the newest release tag (v0.2.0)
    on a commit before HEAD, or else (a clone without tags) the newest commit
    before HEAD that recorded the released contracts, as make release does."""
    head = git("rev-parse", "HEAD")
    for tag in git("tag", "--list", "v*", "--sort=-v:refname").split():
        if git("rev-parse", f"{tag}^{{commit}}") != head and \
                subprocess.run(["git", "merge-base", "--is-ancestor", tag, "HEAD"],
                               cwd=ROOT).returncode == 0:
            return tag
    released = git("log", "--format=%H", "HEAD~1", "--", RELEASED_CONTRACTS).split()
    return released[0][:12] if released else None


def git(*arguments):
    return subprocess.run(["git", *arguments], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def git_show(sha, path):
    shown = subprocess.run(["git", "show", f"{sha}:{path}"], cwd=ROOT, capture_output=True,
                           text=True)
    return shown.stdout if shown.returncode == 0 else None


def note(what):
    print(f"  upgrade: {what}", flush=True)


if __name__ == "__main__":
    main()
