"""The mails themselves: a kind of mail and its context in, an RFC 5322
message out, multipart with a plain text and an HTML part.

Each kind has two templates, ``templates/<kind>.txt`` and ``<kind>.html``,
and a subject. The HTML is autoescaped: a product named ``<b>`` is shown as
text. Every name a template uses must be in its context (StrictUndefined), so a
missing value fails the test that renders it instead of mailing a blank.
"""
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

WELCOME = "welcome"
RECEIPT = "receipt"
REJECTION = "rejection"
CANCELLATION = "cancellation"
EXPIRY = "expiry"

SUBJECTS = {
    WELCOME: "Welcome to the shop, {username}",
    RECEIPT: "Your receipt for order {order_id}",
    REJECTION: "Order {order_id} could not be accepted",
    CANCELLATION: "Order {order_id} is cancelled",
    EXPIRY: "Order {order_id} expired unpaid",
}

templates = Environment(
    loader=PackageLoader("notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def new_message_id(sender):
    """A Message-ID in the sender's domain: ``<...@shop.example>``."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return make_msgid(domain=domain)


def compose(kind, context, *, sender, recipient, message_id, date):
    """The mail of ``kind`` for ``recipient``, rendered from ``context``."""
    message = EmailMessage()
    message["Subject"] = SUBJECTS[kind].format(**context)
    message["From"] = sender
    message["To"] = Address(addr_spec=recipient)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message.set_content(templates.get_template(f"{kind}.txt").render(context))
    message.add_alternative(templates.get_template(f"{kind}.html").render(context),
                            subtype="html")
    return message
