"""The scale-out test (``make scale-test``): two instances each of products,
orders and inventory (one users, one gateway), an order storm through the
gateway, then the crash test's checks (nothing lost, nothing stuck pending,
no oversell, stock conserved) and a check that every instance handled part of
the work.

RabbitMQ's competing consumers spread the RPC calls and events over the
instances. What each instance handled is read from the broker: the messages
delivered on the channels of that process's own connections (the management
API's channel statistics, matched to the process by its TCP ports).
Migrations run once, before any instance starts (tools/storm.py).
"""
import argparse
import json
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import requests

from tools.storm import (
    BROKER, Shop, Stack, add_arguments, prepare, print_report, settle_and_check)

RUN = "scale"
INSTANCES = {"products": 2, "orders": 2, "inventory": 2}
STATS_INTERVAL = 6  # RabbitMQ refreshes channel statistics every 5 s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, users=16, duration=30)
    args = parser.parse_args(argv)

    env = prepare(RUN, args)
    stack = Stack(RUN, env, INSTANCES)
    try:
        stack.start_all()
        print(f"running {', '.join(sorted(stack.processes))}", flush=True)
        shop = Shop(f"http://127.0.0.1:{args.port}")
        product_ids = shop.set_up()
        print(f"storm: {args.users} customers for {args.duration:g} s", flush=True)
        storm = shop.storm(product_ids, args.users, args.duration)
        report = settle_and_check(env, storm, product_ids)
        time.sleep(STATS_INTERVAL)
        handled = handled_per_instance(stack, f"shop-{RUN}")
        scaled = [i for name in INSTANCES for i in stack.instance_names(name)]
        report["handled_per_instance"] = {i: handled[i] for i in sorted(scaled)}
        report["checks"]["every instance handled work"] = all(handled[i] > 0 for i in scaled)
        report["crashed_services"] = stack.crashed()
        report["checks"]["no service crashed"] = not report["crashed_services"]
        report["passed"] = all(report["checks"].values())
    finally:
        stack.stop_all()
    (stack.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report("Scale-out test", report)
    sys.exit(0 if report["passed"] else 1)


def handled_per_instance(stack, vhost):
    """Messages the broker delivered to each instance's channels."""
    channels = requests.get(
        f"http://{BROKER}:15672/api/vhosts/{urllib.parse.quote(vhost, safe='')}/channels",
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
