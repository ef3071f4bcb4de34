"""Where mails go: the SMTP server of the ``SMTP`` settings, or, without
``SMTP.HOST``, ``.eml`` files under ``MAIL.DIRECTORY`` (a local run needs no
mail server, and the files open in any mail client).

``self.mailer.send(message)`` returns once the server accepted the message
(or the file is in place) and raises otherwise: a failure the server may
get over (a connection refused, a 4xx answer) propagates and the event is
retried; a 5xx answer, which the same message would get again, is a
:class:`MailRefused` and goes to the dead letters at once.
"""
import logging
import os
import re
import smtplib
import ssl
from pathlib import Path

from nameko.extensions import DependencyProvider

from common.config import settings_section
from common.errors import ShopError

log = logging.getLogger(__name__)


class MailRefused(ShopError):
    default_code = "mail_refused"


class SmtpTransport:
    def __init__(self, settings):
        self.settings = settings

    def __str__(self):
        return f"the SMTP server at {self.settings['HOST']}:{self.settings['PORT']}"

    def send(self, message):
        settings = self.settings
        try:
            with smtplib.SMTP(settings["HOST"], settings["PORT"],
                              timeout=settings["TIMEOUT_SECONDS"]) as smtp:
                if settings["STARTTLS"]:
                    smtp.starttls(context=ssl.create_default_context())
                if settings["USERNAME"]:
                    smtp.login(settings["USERNAME"], settings["PASSWORD"])
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise MailRefused(f"the SMTP server refused {message['To']}: {exc.recipients}",
                                  details={"codes": codes}) from None
            raise
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise MailRefused(
                    f"the SMTP server refused the mail: {exc.smtp_code} {exc.smtp_error!r}",
                    details={"codes": [exc.smtp_code]}) from None
            raise


class DirectoryTransport:
    def __init__(self, directory):
        self.directory = Path(directory)

    def __str__(self):
        return f".eml files in {self.directory.resolve()}"

    def send(self, message):
        self.directory.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._@-]", "_", message["Message-ID"].strip("<>"))
        path = self.directory / f"{name}.eml"
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(message.as_bytes())
        # a reader never sees half a mail
        os.replace(partial, path)


def transport_for(config):
    """Where ``config`` sends mail: an SmtpTransport or a DirectoryTransport."""
    smtp = settings_section(config, "SMTP")
    if smtp["HOST"]:
        return SmtpTransport(smtp)
    return DirectoryTransport(settings_section(config, "MAIL")["DIRECTORY"])


class Mailer(DependencyProvider):
    """``self.mailer``: ``sender`` (the From address), ``send(message)``, and
    ``claim_seconds``, longer than a send can take (notifications.mailing)."""

    def setup(self):
        config = self.container.config
        self.sender = settings_section(config, "MAIL")["FROM"]
        self.transport = transport_for(config)
        # connecting, STARTTLS, login and the mail: each may take up to the timeout
        self.claim_seconds = 4 * settings_section(config, "SMTP")["TIMEOUT_SECONDS"]

    def start(self):
        log.info("mails go to %s", self.transport)

    def send(self, message):
        self.transport.send(message)

    def get_dependency(self, worker_ctx):
        return self
