"""A RabbitMQ cluster of three nodes on this machine, for the cluster test
(``make cluster-test``) and for trying the shop on a cluster:

    python -m tools.harness.cluster up      # start the nodes and join them; prints AMQP_URI
    python -m tools.harness.cluster down    # stop them and delete their data

Each node is a ``rabbitmq-server`` of its own, run from Debian's package as
the current user, with everything under var/rabbitmq-cluster/: node names
``shop-1@localhost``..., AMQP ports 5771-5773, management API 15771-15773,
inter-node ports 25771-25773, data, logs and the Erlang cookie (HOME points
there). Nothing outside var/rabbitmq-cluster/ changes; the machine's own broker
(rabbit@localhost) is left alone.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tools.harness.storm import BrokerNodes

ROOT = Path(__file__).resolve().parents[2]
BIN = Path("/usr/lib/rabbitmq/bin")
NODES = 3
AMQP_PORT, MANAGEMENT_PORT, DIST_PORT = 5771, 15771, 25771
START_TIMEOUT = 90


class Cluster:
    def __init__(self, base=ROOT / "var" / "rabbitmq-cluster", size=NODES):
        self.base = base
        self.numbers = list(range(1, size + 1))
        self.broker = BrokerNodes(
            amqp_ports=tuple(AMQP_PORT + n - 1 for n in self.numbers),
            management_ports=tuple(MANAGEMENT_PORT + n - 1 for n in self.numbers))

    @staticmethod
    def node_name(number):
        return f"shop-{number}@localhost"

    def home(self):
        return self.base / "home"

    def node_env(self, number):
        node = self.base / f"shop-{number}"
        return {
            **os.environ,
            "HOME": str(self.home()),  # the Erlang cookie every node and rabbitmqctl share
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node_name(number),
            "RABBITMQ_NODE_PORT": str(AMQP_PORT + number - 1),
            "RABBITMQ_DIST_PORT": str(DIST_PORT + number - 1),
            "RABBITMQ_CONFIG_FILE": str(node / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(node / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node / "log"),
            "RABBITMQ_PID_FILE": str(node / "pid"),
            "ERL_CRASH_DUMP": str(node / "log" / "erl_crash.dump"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def write_config(self):
        self.home().mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.base / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        for number in self.numbers:
            node = self.base / f"shop-{number}"
            node.mkdir(parents=True, exist_ok=True)
            (node / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{AMQP_PORT + number - 1}\n"
                f"management.tcp.ip = 127.0.0.1\n"
                f"management.tcp.port = {MANAGEMENT_PORT + number - 1}\n"
                # the cluster test reads connection statistics: fresh ones
                "collect_statistics_interval = 1000\n")

    def ctl(self, number, *args, check=True, timeout=START_TIMEOUT):
        return subprocess.run(
            [str(BIN / "rabbitmqctl"), "-n", self.node_name(number), *args],
            env=self.node_env(number), capture_output=True, text=True, check=check,
            timeout=timeout)

    def start_node(self, number):
        subprocess.run([str(BIN / "rabbitmq-server"), "-detached"],
                       env=self.node_env(number), check=True, capture_output=True)

    def await_node(self, number):
        # ``wait`` first waits for the pid file, so it can run just after the start
        pid_file = self.base / f"shop-{number}" / "pid"
        self.ctl(number, "wait", str(pid_file), "--timeout", str(START_TIMEOUT),
                 timeout=START_TIMEOUT + 10)

    def up(self):
        """Start every node and join them into one cluster."""
        self.down()
        shutil.rmtree(self.base, ignore_errors=True)
        self.write_config()
        for number in self.numbers:
            self.start_node(number)
        for number in self.numbers:
            self.await_node(number)
        first = self.numbers[0]
        for number in self.numbers[1:]:
            self.ctl(number, "stop_app")
            self.ctl(number, "join_cluster", self.node_name(first))
            self.ctl(number, "start_app")
        self.wait_for_members(len(self.numbers))

    def wait_for_members(self, count):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                nodes = requests.get(f"{self.broker.management_api()}/nodes", timeout=5).json()
                if sum(1 for node in nodes if node.get("running")) >= count:
                    return
            except (requests.RequestException, RuntimeError):
                pass
            time.sleep(1)
        raise RuntimeError(f"the cluster did not have {count} running nodes "
                           f"within {START_TIMEOUT} s")

    def pid(self, number):
        try:
            return int((self.base / f"shop-{number}" / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill_node(self, number):
        """SIGKILL the node's Erlang VM: no goodbye to clients or peers."""
        os.kill(self.pid(number), signal.SIGKILL)

    def restart_node(self, number):
        """Start a killed node again; it rejoins the cluster it was in."""
        self.start_node(number)
        self.await_node(number)
        self.wait_for_members(len(self.numbers))

    def down(self):
        """Stop every node (kill what does not stop) and delete their data;
        their logs stay (var/rabbitmq-cluster/shop-<n>/log/)."""
        for number in self.numbers:
            pid = self.pid(number)
            if pid is None:
                continue
            try:
                self.ctl(number, "stop", check=False, timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            (self.base / f"shop-{number}" / "pid").unlink(missing_ok=True)
        for number in self.numbers:
            shutil.rmtree(self.base / f"shop-{number}" / "mnesia", ignore_errors=True)

    def amqp_uri(self, vhost="/"):
        return self.broker.amqp_uri(vhost)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    cluster = Cluster()
    if args.command == "up":
        try:
            cluster.up()
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            cluster.down()
            sys.exit(f"Error: the cluster did not start: {exc}")
        print(f"AMQP_URI='{cluster.amqp_uri()}'")
    else:
        cluster.down()


if __name__ == "__main__":
    main()
