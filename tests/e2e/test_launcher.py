"""``make run``'s launcher as a user meets it: separate ``nameko run``
processes, SQLite files it migrates itself, the README's walk-through
answering as the README says, Ctrl-C stopping them all."""
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port

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


def launch(env):
    """The launcher as a shell's background job (``make run &``) starts it:
    with SIGINT ignored, which its services must not inherit."""
    return subprocess.Popen(
        [sys.executable, "-m", "tools.launch"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


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


def test_the_launcher_runs_the_readme_walk_through_and_stops(rabbit_config, tmp_path):
    port = free_port()
    marker = f"SHOP_LAUNCH_TEST={uuid.uuid4().hex}"
    env = {
        **os.environ,
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "USERS_DB_URI": f"sqlite:///{tmp_path}/users.db",
        "PRODUCTS_DB_URI": f"sqlite:///{tmp_path}/products.db",
        "ORDERS_DB_URI": f"sqlite:///{tmp_path}/orders.db",
        "INVENTORY_DB_URI": f"sqlite:///{tmp_path}/inventory.db",
        "SHOP_ADMIN_USERNAME": "admin",
        "SHOP_ADMIN_PASSWORD": "admin-password",
        marker.split("=")[0]: marker.split("=")[1],
    }
    launcher = launch(env)
    try:
        output = read_until(launcher, "Gateway listening on", timeout=60)
        assert f"http://127.0.0.1:{port}" in output
        assert len(processes_with(marker)) == 6  # the launcher and five services

        walk_through = readme_walk_through().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        run = subprocess.run(["bash", "-e", "-c", walk_through],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert_answers_match_comments(walk_through, run.stdout)
    finally:
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest = launcher.communicate(timeout=20)[0]

    assert launcher.returncode == 0, rest
    assert "Stopping" in rest and "did not stop" not in rest
    assert processes_with(marker) == []


def test_the_launcher_says_in_one_line_when_the_broker_is_down(tmp_path):
    env = {**os.environ, "AMQP_URI": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    result = subprocess.run(
        [sys.executable, "-m", "tools.launch"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: RabbitMQ is not reachable at amqp://guest:**@127.0.0.1:")
    assert "rabbitmq-server -detached" in line
