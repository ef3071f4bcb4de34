"""A real SMTP server for the tests: aiosmtpd in a process of its own (the
test process runs under eventlet's monkey patch, which asyncio does not
survive), keeping what it accepts in a Maildir the test reads.

It refuses, with a permanent 550, every recipient at ``refused.example``.
"""
import mailbox
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiosmtpd.handlers import Mailbox

ROOT = Path(__file__).resolve().parent.parent
REFUSED_DOMAIN = "refused.example"


class RefusingMailbox(Mailbox):
    """aiosmtpd's Maildir handler, with the refusal above."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class SmtpServer:
    """``start()``, ``stop()`` (a stopped server refuses connections: the
    port stays the same) and ``messages()``, the mails it accepted."""

    def __init__(self, directory, port):
        self.maildir = Path(directory)
        self.port = port
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "--nosetuid", "--listen", f"127.0.0.1:{self.port}",
             "--class", f"{__name__}.RefusingMailbox", str(self.maildir)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the SMTP server did not start: {self.stderr()}")
                time.sleep(0.05)

    def stderr(self):
        return self.process.stderr.read().decode(errors="replace") if self.process else ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def messages(self):
        """Every accepted mail, as ``email.message.Message``, oldest first."""
        if not self.maildir.exists():
            return []
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        return sorted((box[key] for key in box.keys()),
                      key=lambda message: message.get_date())
