"""A PostgreSQL cluster run by Patroni, on this machine, for the database
failover test (tools/harness/db_failover.py): etcd and three PostgreSQL
nodes, each on its own ports and data directory under ``directory``, apart
from the system's PostgreSQL on 5432. Debian's ``patroni`` and
``etcd-server``; the PostgreSQL binaries are the system's.

Each node runs the configuration docker compose deploys
(deploy/patroni/patroni.yml: password authentication, the shop's databases
created by its post_bootstrap script, synchronous mode above all: a commit
returns once a second node has it, so losing the primary loses no commit
the shop acknowledged, and Patroni promotes the synchronous standby), with
this machine's ports and directories and a shorter leader key. PostgreSQL
refuses to run as root,
so Patroni and its PostgreSQL run as the ``postgres`` user when this runs as
root.
"""
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg2
import requests
import yaml

from tools.harness.storm import ROOT, wait

ETCD_CLIENT_PORT, ETCD_PEER_PORT = 23790, 23800
FIRST_PG_PORT, FIRST_API_PORT = 5441, 8011
NODES = ("node1", "node2", "node3")
# Each node runs the configuration docker compose deploys, with this
# machine's ports, directories and PostgreSQL binaries, and a shorter leader
# key, so that a failover takes 10 s here rather than 20: a node gone for ttl
# seconds loses it.
DEPLOYED = ROOT / "deploy" / "patroni"
FAST_FAILOVER = {"ttl": 10, "loop_wait": 2, "retry_timeout": 4}
# the role the shop logs in as (the superuser, as in compose) and its password
USER, PASSWORD = "shop", "failover-test-password"
# what the node that initialises the cluster runs, creating the shop's databases
DATABASES_SQL = ROOT / "deploy" / "postgres-init.sql"


def postgres_bin_dir():
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda path: int(path.name))
    return versions[-1] / "bin"


class PatroniCluster:
    def __init__(self, directory):
        self.directory = Path(directory).resolve()
        self.processes = {}
        self.log_files = []
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.uid_gid = (owner.pw_uid, owner.pw_gid) if owner else None

    def pg_port(self, node):
        return FIRST_PG_PORT + NODES.index(node)

    def api(self, node):
        return f"http://127.0.0.1:{FIRST_API_PORT + NODES.index(node)}"

    def uri(self, database):
        """The URI a service is given: every node, libpq picking the one
        that takes writes (``target_session_attrs=read-write``)."""
        hosts = "&".join(f"host=127.0.0.1:{self.pg_port(node)}" for node in NODES)
        return (f"postgresql://{USER}:{PASSWORD}@/{database}?{hosts}"
                "&target_session_attrs=read-write&connect_timeout=3")

    def database_created(self, database, timeout=30):
        """Returns once every node has ``database``. libpq tries the next host
        when one refuses connections or takes no writes, but not when a host
        answers that the database does not exist (a standby that has not yet
        replayed its creation): it fails the connection there."""
        def everywhere():
            for node in NODES:
                try:
                    psycopg2.connect(host="127.0.0.1", port=self.pg_port(node), user=USER,
                                     password=PASSWORD, dbname=database,
                                     connect_timeout=3).close()
                except psycopg2.OperationalError:
                    return False
            return True
        wait(everywhere, timeout, f"every node to have the database {database}")

    def start(self, timeout=90):
        """etcd, then the three nodes; returns once there is a leader, a
        synchronous standby and a replica, all streaming."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self._spawn("etcd", [
            "etcd", "--name", "etcd", "--data-dir", str(self.directory / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--advertise-client-urls", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
            "--initial-cluster", f"etcd=http://127.0.0.1:{ETCD_PEER_PORT}"], as_postgres=False)
        for node in NODES:
            self._write_config(node)
            self.start_node(node)
        wait(lambda: self.roles() is not None and sorted(self.roles().values()) == [
            "leader", "replica", "sync_standby"] and self.all_streaming(), timeout,
            "a leader, a synchronous standby and a replica")
        # the deployed post_bootstrap ran
        for database in re.findall(r"CREATE DATABASE (\w+);", DATABASES_SQL.read_text()):
            self.database_created(database)

    def start_node(self, node):
        # the passwords and the databases' script, as compose gives them
        self._spawn(node, ["patroni", str(self.directory / node / "patroni.yml")], env={
            **os.environ, "PATRONI_SUPERUSER_PASSWORD": PASSWORD,
            "PATRONI_REPLICATION_PASSWORD": "failover-test-replication",
            "SHOP_DATABASES_SQL": str(DATABASES_SQL)})

    def members(self):
        """Patroni's view of the cluster, from the first node that answers."""
        for node in NODES:
            try:
                return requests.get(f"{self.api(node)}/cluster", timeout=2).json()["members"]
            except (requests.RequestException, ValueError, KeyError):
                continue
        return None

    def roles(self):
        """``{node: role}`` ("leader", "sync_standby", "replica"), or None."""
        members = self.members()
        return None if members is None else {member["name"]: member["role"] for member in members}

    def all_streaming(self):
        return all(member["state"] in ("running", "streaming")
                   for member in self.members() or [])

    def leader(self):
        return next((node for node, role in (self.roles() or {}).items() if role == "leader"),
                    None)

    def kill(self, node):
        """Lose ``node``: SIGKILL its Patroni and its postmaster together (a
        Patroni left alive would restart its PostgreSQL and keep the lock)."""
        postmaster = self._postmaster_pid(node)
        self.processes.pop(node).kill()
        if postmaster is not None:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        """Every node, then etcd; what does not stop in time is killed."""
        for name in (*NODES, "etcd"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for node in NODES:  # a postmaster whose Patroni was killed
            postmaster = self._postmaster_pid(node)
            if postmaster is not None:
                try:
                    os.kill(postmaster, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for log in self.log_files:
            log.close()

    def _postmaster_pid(self, node):
        pid_file = self.directory / node / "data" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _spawn(self, name, command, as_postgres=True, env=None):
        log = open(self.directory / f"{name}.log", "a")
        self.log_files.append(log)
        as_user = {"user": self.uid_gid[0], "group": self.uid_gid[1]} \
            if as_postgres and self.uid_gid else {}
        self.processes[name] = subprocess.Popen(
            command, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, **as_user)

    def _write_config(self, node):
        home = self.directory / node
        home.mkdir(mode=0o700)
        api = f"127.0.0.1:{FIRST_API_PORT + NODES.index(node)}"
        pg = f"127.0.0.1:{self.pg_port(node)}"
        config = yaml.safe_load((DEPLOYED / "patroni.yml").read_text())
        config["name"] = node
        config["restapi"] = {"listen": api, "connect_address": api}
        config["etcd3"] = {"host": f"127.0.0.1:{ETCD_CLIENT_PORT}"}
        config["bootstrap"]["dcs"].update(FAST_FAILOVER)
        config["bootstrap"]["post_bootstrap"] = str(DEPLOYED / "post-bootstrap.sh")
        config["postgresql"].update({
            "listen": pg, "connect_address": pg,
            "data_dir": str(home / "data"),
            "bin_dir": str(postgres_bin_dir()),
            "pgpass": str(home / "pgpass"),
            "parameters": {"unix_socket_directories": str(home)},
        })
        (home / "patroni.yml").write_text(yaml.safe_dump(config))
        if self.uid_gid:
            for path in (self.directory, home, home / "patroni.yml"):
                os.chown(path, *self.uid_gid)


def describe(members):
    return json.dumps([{key: member.get(key) for key in ("name", "role", "state", "lag")}
                       for member in members or []])
