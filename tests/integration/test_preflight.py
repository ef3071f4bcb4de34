"""``make test`` stops before the suite, with one line saying what is missing
and the command that fixes it, when a service it needs is not there."""
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def make(*arguments):
    return subprocess.run(["make", "--no-print-directory", *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def our_lines(result):
    """What the shop printed: everything but make's own "make: ***" line
    ("make[1]: ***" when the suite itself runs under make)."""
    return [line for line in (result.stdout + result.stderr).splitlines()
            if not re.match(r"make(\[\d+\])?: \*\*\*", line)]


def test_make_test_without_the_management_plugin_says_how_to_enable_it():
    port = free_port()  # nothing listens there, as with the plugin off
    result = make("test", f"RABBIT_CTL_URI=http://guest:guest@127.0.0.1:{port}")
    assert result.returncode != 0
    assert our_lines(result) == [
        f"Error: RabbitMQ's management API is not reachable at http://127.0.0.1:{port} "
        "([Errno 111] Connection refused); the tests need it: run "
        "`rabbitmq-plugins enable rabbitmq_management`."]


@pytest.mark.parametrize("target, setting, said, fix", [
    ("test", "TEST_AMQP_URI=amqp://guest:guest@127.0.0.1:{port}/",
     "Error: RabbitMQ is not reachable at amqp://guest:**@127.0.0.1:{port}",
     "`rabbitmq-server -detached`"),
    ("test-postgres", "PG_URI=postgresql://postgres@127.0.0.1:{port}",
     "Error: PostgreSQL is not reachable at 127.0.0.1:{port}",
     "pg_ctlcluster --skip-systemctl-redirect"),
])
def test_a_missing_server_is_one_line_with_the_command_that_starts_it(target, setting, said, fix):
    port = free_port()
    result = make(target, setting.format(port=port))
    assert result.returncode != 0
    [line] = our_lines(result)
    assert line.startswith(said.format(port=port)) and fix in line
