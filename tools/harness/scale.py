"""The scale-out test (``make scale-test``): two instances each of products,
orders, inventory and notifications (one users, one gateway), an order storm
through the gateway, then the crash test's checks (nothing lost, nothing
stuck pending, no oversell, stock conserved, one mail per order that owes
one) and a check that every instance handled part of the work.

RabbitMQ's competing consumers spread the RPC calls and events over the
instances. What each instance handled is read from the broker: the messages
delivered on the channels of that process's own connections (the management
API's channel statistics, matched to the process by its TCP ports).
Migrations run once, before any instance starts (tools/harness/storm.py).
"""
import argparse
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import requests

from tools.harness.storm import add_arguments, run_test

RUN = "scale"
INSTANCES = {"products": 2, "orders": 2, "inventory": 2, "notifications": 2}
STATS_INTERVAL = 6  # RabbitMQ refreshes channel statistics every 5 s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, users=16, duration=30)
    run_test("Scale-out test", RUN, parser.parse_args(argv), INSTANCES,
             after_settling=check_every_instance_worked)


def check_every_instance_worked(stack, report):
    time.sleep(STATS_INTERVAL)
    handled = handled_per_instance(stack, f"shop-{RUN}")
    scaled = sorted(i for name in INSTANCES for i in stack.instance_names(name))
    report["handled_per_instance"] = {i: handled[i] for i in scaled}
    report["checks"]["every instance handled work"] = all(handled[i] > 0 for i in scaled)


def handled_per_instance(stack, vhost):
    """Messages the broker delivered to each instance's channels."""
    channels = requests.get(
        f"{stack.broker.management_api()}/vhosts/{urllib.parse.quote(vhost, safe='')}/channels",
        timeout=10).json()
    delivered_by_port = Counter()
    for channel in channels:
        port = channel["connection_details"]["peer_port"]
        delivered_by_port[port] += channel.get("message_stats", {}).get("deliver_get", 0)
    return {instance: sum(delivered_by_port[port] for port in local_ports(process.pid))
            for instance, process in stack.processes.items()}


def local_ports(pid):
    """The local TCP ports of the sockets process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


if __name__ == "__main__":
    main()
