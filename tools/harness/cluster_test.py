"""The cluster test (``make cluster-test``): the order storm of the crash test
on a 3-node RabbitMQ cluster, with a node killed mid-storm.

It starts the cluster (tools/harness/cluster.py, everything under var/rabbitmq-cluster/), then
two instances of every service, each connected to every node (its AMQP_URI
lists them all, starting at a different one). A third of the way into the
storm it SIGKILLs the node that holds the most connections, and restarts it
(it rejoins) later. Then it checks what the crash test checks (0 lost, 0
stuck pending, stock conserved, reserved = awaiting payment, 0 dead letters,
no service crashed, no server error but 503 with Retry-After) and prints how
long the shop took to answer again. The cluster is torn down at the end,
also on failure, Ctrl-C or SIGTERM.
"""
import argparse
import time
from collections import Counter

import requests

from tools.harness.cluster import Cluster
from tools.harness.storm import (
    add_arguments, run_test, server_errors_but_503, stop_on_sigterm, time_until_answering)
from tools.launch import SERVICES

RUN = "cluster"
INSTANCES = {name: 2 for name in SERVICES}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, users=16, duration=60)
    args = parser.parse_args(argv)
    stop_on_sigterm()  # the finally below stops the cluster
    cluster = Cluster()
    try:
        print("starting a RabbitMQ cluster of 3 nodes under var/rabbitmq-cluster/...", flush=True)
        cluster.up()
        failover = Failover(cluster)
        run_test("Cluster test", RUN, args, INSTANCES, during_storm=failover.during_storm,
                 after_settling=failover.report, broker=cluster.broker)
    finally:
        print("stopping the RabbitMQ cluster", flush=True)
        cluster.down()


class Failover:
    def __init__(self, cluster):
        self.cluster = cluster
        self.figures = {}
        self.answers_during = None

    def during_storm(self, stack, duration, shop):
        started = time.monotonic()
        time.sleep(duration * 0.3)
        per_node = self.connections_per_node()
        busiest = max(self.cluster.numbers,
                      key=lambda n: per_node.get(self.cluster.node_name(n), 0))
        note(f"connections per node: {dict(per_node)}; SIGKILL {self.cluster.node_name(busiest)}")
        killed_at, answers_before = time.monotonic(), shop.answers()
        self.cluster.kill_node(busiest)
        answered = time_until_answering(stack, killed_at)
        self.answers_during = shop.answers() - answers_before
        note(f"the shop answers again {answered:.1f} s after the kill" if answered is not None
             else "the shop did not answer again within 60 s")
        time.sleep(max(0.0, started + duration * 0.65 - time.monotonic()))
        note(f"restart {self.cluster.node_name(busiest)}")
        self.cluster.restart_node(busiest)
        note(f"{self.cluster.node_name(busiest)} is back in the cluster")
        self.figures = {
            "killed_node": self.cluster.node_name(busiest),
            "connections_by_node": dict(per_node),
            "answered_again_after_s": None if answered is None else round(answered, 1),
            "http_answers_until_then": dict(self.answers_during),
        }

    def connections_per_node(self):
        connections = requests.get(f"{self.cluster.broker.management_api()}/connections",
                                   params={"columns": "node"}, timeout=10).json()
        return Counter(connection["node"] for connection in connections)

    def report(self, stack, report):
        report["failover"] = self.figures
        report["checks"]["the shop answered again"] = \
            self.figures.get("answered_again_after_s") is not None
        report["checks"]["only 503 with Retry-After until it answered again"] = \
            self.answers_during is not None and not server_errors_but_503(self.answers_during)


def note(what):
    print(f"  cluster: {what}", flush=True)


if __name__ == "__main__":
    main()
