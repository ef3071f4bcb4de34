"""``make run``'s launcher as a user meets it: separate ``nameko run``
processes, SQLite files it migrates itself, the README's walk-through
answering as the README says, Ctrl-C stopping them all, and no service
outliving the launcher however it ends."""
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port, free_ports
from tests.e2e.conftest import Api
from tests.helpers import wait_for
from tests.smtp_server import SmtpServer
from tools.launch import DOMAIN_SERVICES, SERVICES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def processes_with(marker):
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # the process ended while we looked
            pass
    return found


LAUNCHER = [sys.executable, "-m", "tools.launch"]


def shop_env(rabbit_config, tmp_path, marker):
    """The environment of a launcher on the test vhost, its own SQLite files
    and free ports; every process it starts carries ``marker``."""
    name, value = marker.split("=")
    web_port, *metrics_ports = free_ports(1 + len(DOMAIN_SERVICES))
    return {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{web_port}",
        "USERS_DB_URI": f"sqlite:///{tmp_path}/users.db",
        "PRODUCTS_DB_URI": f"sqlite:///{tmp_path}/products.db",
        "ORDERS_DB_URI": f"sqlite:///{tmp_path}/orders.db",
        "INVENTORY_DB_URI": f"sqlite:///{tmp_path}/inventory.db",
        "NOTIFICATIONS_DB_URI": f"sqlite:///{tmp_path}/notifications.db",
        "MAIL_DIRECTORY": str(tmp_path / "mail"),
        **{f"{service.upper()}_METRICS_PORT": str(port)
           for service, port in zip(DOMAIN_SERVICES, metrics_ports)},
        "SHOP_ADMIN_USERNAME": "admin",
        "SHOP_ADMIN_PASSWORD": "admin-password",
        name: value,
    }


def new_marker():
    return f"SHOP_LAUNCH_TEST={uuid.uuid4().hex}"


def launch(env):
    """The launcher as a shell's background job (``make run &``) starts it:
    with SIGINT ignored, which its services must not inherit."""
    return subprocess.Popen(
        LAUNCHER, cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def launch_in_terminal(env, command=LAUNCHER):
    """``command`` leading a session whose controlling terminal is a
    pseudo-terminal, as a terminal window or a tmux session started with it
    runs it. Returns the process and the terminal's master side; closing it
    is closing the window."""
    master, slave = os.openpty()

    def lead_a_session_on_the_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # as a terminal starts its command, whatever this process ignores
        # (a suite run under nohup ignores SIGHUP, which make would keep)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=slave, stdout=slave,
                               stderr=slave, preexec_fn=lead_a_session_on_the_terminal)
    os.close(slave)
    return process, master


def read_terminal_until(master, text, timeout):
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"no {text!r} on the terminal:\n{seen.decode()}"
        try:
            seen += os.read(master, 65536)
        except OSError as exc:  # EIO: every process on the terminal has ended
            raise AssertionError(f"the terminal closed ({exc}) before {text!r}; it showed:\n"
                                 f"{seen.decode(errors='replace')}") from None
    return seen.decode()


def read_until(process, text, timeout):
    """The launcher's output up to the first line containing ``text``."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return "".join(lines)
    raise AssertionError(f"no {text!r} in launcher output:\n{''.join(lines)}")


def readme_walk_through():
    """The README's curl walk-through, as a newcomer pastes it."""
    readme = (ROOT / "README.md").read_text()
    after_marker = readme.split("compares its output with the comments. -->\n```sh\n", 1)[1]
    return after_marker.split("```", 1)[0]


def assert_answers_match_comments(script, output):
    """Each JSON answer printed equals the ``# {...}`` comment shown for it,
    where the comment's ``...`` stands for anything."""
    shown = [line[2:] for line in script.splitlines() if line.startswith("# {")]
    answers = output.splitlines()
    assert len(answers) == len(shown), output
    for answer, comment in zip(answers, shown):
        pattern = ".*".join(re.escape(part) for part in comment.split("..."))
        assert re.fullmatch(pattern, answer), f"README shows {comment}\nthe shop answered {answer}"


def test_the_launcher_runs_the_readme_walk_through_and_stops(
        rabbit_config, rabbit_manager, tmp_path):
    marker = new_marker()
    env = shop_env(rabbit_config, tmp_path, marker)
    address = env["WEB_SERVER_ADDRESS"]
    launcher = launch(env)
    try:
        output = read_until(launcher, "Gateway listening on", timeout=60)
        assert f"http://{address}" in output
        mail_line = read_until(launcher, "Mails to customers go to", timeout=5)
        assert f".eml files in {tmp_path / 'mail'}" in mail_line
        assert len(processes_with(marker)) == 1 + len(SERVICES)  # the launcher and the services
        request_queues = {queue["name"]: queue["type"]
                          for queue in rabbit_manager.get_queues(rabbit_config["vhost"])
                          if queue["name"].startswith("rpc-")}
        assert request_queues == {f"rpc-{name}": "quorum" for name in DOMAIN_SERVICES}

        walk_through = readme_walk_through().replace("127.0.0.1:8000", address)
        run = subprocess.run(["bash", "-e", "-c", walk_through],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert_answers_match_comments(walk_through, run.stdout)
        # the customer the walk-through registered is welcomed, and gets a receipt
        def mails():
            return sorted(re.search(r"^Subject: (.*)$", path.read_text(), re.MULTILINE)[1]
                          for path in (tmp_path / "mail").glob("*.eml"))
        wait_for(lambda: len(mails()) >= 2, timeout=10)
        assert mails() == ["Welcome to the shop, alice", "Your receipt for order 1"]

        second = subprocess.run(LAUNCHER, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode != 0 and second.stdout == ""
        assert second.stderr.splitlines() == [
            f"Error: port {address.split(':')[1]} (the gateway, WEB_SERVER_ADDRESS) is already "
            "in use: the shop may already be running (stop it with Ctrl-C), or free the port "
            "and try again."]
        assert len(processes_with(marker)) == 1 + len(SERVICES)  # it started nothing
    finally:
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest = launcher.communicate(timeout=20)[0]

    assert launcher.returncode == 0, rest
    assert "Stopping" in rest and "did not stop" not in rest
    assert processes_with(marker) == []


def test_with_an_smtp_host_a_customer_gets_each_mail_once_at_that_server(
        rabbit_config, tmp_path):
    """``SMTP_HOST=127.0.0.1 SMTP_PORT=2525 make run``, with a real SMTP server
    there: a customer who registers, pays one order and has another rejected
    gets exactly those three mails."""
    smtp_server = SmtpServer(tmp_path / "maildir", free_port()).start()
    marker = new_marker()
    env = {**shop_env(rabbit_config, tmp_path, marker),
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_server.port)}
    launcher = launch(env)
    try:
        read_until(launcher, "Gateway listening on", timeout=60)
        mail_line = read_until(launcher, "Mails to customers go to", timeout=5)
        assert f"the SMTP server at 127.0.0.1:{smtp_server.port}" in mail_line
        api = Api(f"http://{env['WEB_SERVER_ADDRESS']}", database_engines=None)
        admin, bob = api.admin_token(), api.customer_token("bob")
        product_id = api.product(admin, name="Moka pot")
        assert api.restock(admin, product_id, 3).status_code == 200
        paid = api.place(bob, (product_id, 2))
        assert api.settled(bob, paid["id"])["status"] == "awaiting_payment"
        assert api.call("POST", f"/orders/{paid['id']}/pay", token=bob).status_code == 200
        rejected = api.place(bob, (product_id, 5))
        assert api.settled(bob, rejected["id"])["status"] == "rejected"

        def mails_to_bob():
            return [mail for mail in smtp_server.messages() if mail["X-RcptTo"] == "bob@example.com"]
        wait_for(lambda: len(mails_to_bob()) >= 3, timeout=20)
        time.sleep(2)  # a mail sent twice would arrive by now
        assert sorted(mail["Subject"] for mail in mails_to_bob()) == [
            f"Order {rejected['id']} could not be accepted", "Welcome to the shop, bob",
            f"Your receipt for order {paid['id']}"]
        [receipt] = [mail for mail in mails_to_bob() if mail["Subject"].startswith("Your receipt")]
        assert "2 x Moka pot at 34.90: 69.80" in receipt.get_payload(0).get_payload(decode=True).decode()
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=20)
        smtp_server.stop()
    assert launcher.returncode == 0
    assert processes_with(marker) == []


def test_the_launcher_says_in_one_line_when_the_broker_is_down(tmp_path):
    env = {**os.environ, "AMQP_URI": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
           "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}", "USERS_METRICS_PORT": "0",
           "PRODUCTS_METRICS_PORT": "0", "INVENTORY_METRICS_PORT": "0", "ORDERS_METRICS_PORT": "0"}
    result = subprocess.run(LAUNCHER, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: RabbitMQ is not reachable at amqp://guest:**@127.0.0.1:")
    assert "rabbitmq-server -detached" in line


def test_a_taken_metrics_port_stops_the_launcher_before_it_starts_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
               "ORDERS_METRICS_PORT": str(port),
               "ORDERS_DB_URI": f"sqlite:///{tmp_path}/orders.db"}
        result = subprocess.run(LAUNCHER, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"Error: port {port} (the orders service's metrics, METRICS.PORTS.orders) is already "
        "in use: the shop may already be running")
    assert not (tmp_path / "orders.db").exists()  # not even migrated


def assert_nothing_outlives(marker, timeout=15):
    wait_for(lambda: processes_with(marker) == [], timeout=timeout)


def assert_the_services_end_with_the_launcher(launcher, marker, until_ready, end):
    try:
        until_ready()
        assert len(processes_with(marker)) == 1 + len(SERVICES)
        end()
        launcher.wait(timeout=20)
        assert_nothing_outlives(marker)
    finally:
        launcher.kill()
        launcher.wait()


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL"])
def test_no_service_outlives_the_launcher(rabbit_config, tmp_path, ending):
    marker = new_marker()
    launcher = launch(shop_env(rabbit_config, tmp_path, marker))
    assert_the_services_end_with_the_launcher(
        launcher, marker, lambda: read_until(launcher, "Gateway listening on", timeout=60),
        lambda: launcher.send_signal(getattr(signal, ending)))


def test_closing_the_terminal_stops_every_service(rabbit_config, tmp_path):
    marker = new_marker()
    launcher, terminal = launch_in_terminal(shop_env(rabbit_config, tmp_path, marker))
    assert_the_services_end_with_the_launcher(
        launcher, marker,
        lambda: read_terminal_until(terminal, "Gateway listening on", timeout=60),
        lambda: os.close(terminal))  # the kernel hangs up: SIGHUP to the launcher


def test_closing_a_terminal_that_make_run_leads_stops_every_service(rabbit_config, tmp_path):
    """``tmux new-session "make run"``, then ``tmux kill-session``: the
    kernel's SIGHUP goes to make alone, which waits for the launcher; the
    launcher sees its terminal hang up and stops the shop."""
    marker = new_marker()
    make, terminal = launch_in_terminal(
        shop_env(rabbit_config, tmp_path, marker), ["make", "--no-print-directory", "run"])
    try:
        read_terminal_until(terminal, "Gateway listening on", timeout=90)
        assert len(processes_with(marker)) == 2 + len(SERVICES)  # make, the launcher, services
        os.close(terminal)
        assert_nothing_outlives(marker)
        assert make.wait(timeout=5) != 0  # make ends by its SIGHUP
    finally:
        for pid in processes_with(marker):  # whatever a failure left running
            os.kill(pid, signal.SIGTERM)
        make.wait()


def test_a_second_ctrl_c_stops_the_rest_at_once(rabbit_config, tmp_path):
    marker = new_marker()
    launcher = launch(shop_env(rabbit_config, tmp_path, marker))
    read_until(launcher, "Gateway listening on", timeout=60)
    launcher.send_signal(signal.SIGINT)
    read_until(launcher, "Stopping...", timeout=5)
    launcher.send_signal(signal.SIGINT)  # while the services stop
    rest = launcher.communicate(timeout=20)[0]
    assert "Stopping at once" in rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
    assert_nothing_outlives(marker, timeout=5)
