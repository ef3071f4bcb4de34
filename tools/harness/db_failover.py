"""The database failover test (``make db-failover-test``): the order storm of
the crash test on a PostgreSQL cluster run by Patroni, whose primary is
killed mid-storm.

It starts etcd and three PostgreSQL nodes under Patroni in synchronous mode
(tools/harness/patroni.py: own ports and data directories under
var/failover/patroni/, apart from the system's PostgreSQL), creates the
shop's databases there, migrates them, and starts two instances of each
domain service and two gateways, each given every node in its database URI
(libpq picks the primary: ``target_session_attrs=read-write``). Mid-storm,
with restocks so that most orders are reserved and paid, it SIGKILLs the
primary's Patroni and its postmaster together: Patroni promotes the
synchronous standby once the leader key runs out. Later it starts the old
node again, which rejoins as a standby. Then it checks what the crash test
checks (nothing lost or stuck, stock conserved, no dead letter, no
duplicate order, one mail per order that owes one), and that clients saw
no server error but 503 with Retry-After; it prints how long until a new
primary was promoted and until the shop answered again.

It tears everything down at the end, also on failure, Ctrl-C or SIGTERM.
Logs go to var/failover/ (the nodes' to var/failover/patroni/).
"""
import argparse
import time

from tools.harness.patroni import PatroniCluster, describe
from tools.harness.storm import (
    ROOT, add_arguments, run_test, server_errors_but_503, stop_on_sigterm, time_until_answering,
    wait)

RUN = "failover"
INSTANCES = {"users": 2, "products": 2, "inventory": 2, "orders": 2, "notifications": 2,
             "gateway": 2}
RESTOCK_EVERY = 0.1
# when, as a fraction of the storm, the primary is killed and its node restarted
KILL_AT, RESTART_AT = 0.3, 0.65


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, users=8, duration=60)
    args = parser.parse_args(argv)
    args.database = "postgresql"
    stop_on_sigterm()  # the finally below stops the cluster
    cluster = PatroniCluster(ROOT / "var" / RUN / "patroni")
    try:
        note("starting etcd and three PostgreSQL nodes under Patroni")
        cluster.start()
        note(f"cluster: {describe(cluster.members())}")
        failover = Failover(cluster)
        run_test("Database failover test", RUN, args, INSTANCES,
                 during_storm=failover.during_storm, after_settling=failover.report,
                 postgres=cluster, restock_every=RESTOCK_EVERY)
    finally:
        cluster.stop()


class Failover:
    def __init__(self, cluster):
        self.cluster = cluster
        self.figures = {}
        self.killed = None
        self.answers_during = None

    def during_storm(self, stack, duration, shop):
        started = time.monotonic()

        def at(fraction):
            time.sleep(max(0.0, started + duration * fraction - time.monotonic()))

        at(KILL_AT)
        self.killed = self.cluster.leader()
        note(f"SIGKILL the primary's node, {self.killed} (Patroni and postmaster)")
        killed_at, answers_before = time.monotonic(), shop.answers()
        self.cluster.kill(self.killed)
        wait(lambda: self.cluster.leader() not in (None, self.killed), 60, "a new primary")
        self.figures["new primary"] = self.cluster.leader()
        self.figures["promoted after"] = f"{time.monotonic() - killed_at:.1f} s"
        note(f"{self.cluster.leader()} is the primary")
        answered = time_until_answering(stack, killed_at)
        if answered is not None:
            self.figures["shop answered again after"] = f"{answered:.1f} s"
        self.answers_during = shop.answers() - answers_before
        self.figures["HTTP answers until then"] = dict(self.answers_during)
        at(RESTART_AT)
        note(f"start {self.killed} again")
        restarted_at = time.monotonic()
        self.cluster.start_node(self.killed)
        try:
            wait(self.rejoined, 90, f"{self.killed} to rejoin as a standby")
            self.figures["old primary rejoined after"] = \
                f"{time.monotonic() - restarted_at:.1f} s"
        except SystemExit as exc:  # wait() timed out
            note(str(exc))
        note(f"cluster: {describe(self.cluster.members())}")

    def rejoined(self):
        member = next((member for member in self.cluster.members() or []
                       if member["name"] == self.killed), None)
        return member is not None and member["role"] in ("replica", "sync_standby") and \
            member["state"] in ("running", "streaming")

    def report(self, stack, report):
        report["failover"] = self.figures
        report["checks"]["a standby was promoted"] = "new primary" in self.figures
        report["checks"]["the shop answered again"] = "shop answered again after" in self.figures
        report["checks"]["only 503 with Retry-After until it answered again"] = \
            self.answers_during is not None and not server_errors_but_503(self.answers_during)
        report["checks"]["the old primary rejoined as a standby"] = \
            "old primary rejoined after" in self.figures


def note(what):
    print(f"  failover: {what}", flush=True)


if __name__ == "__main__":
    main()
