"""A mail is sent once: the rule, in plain Python over a session and a mailer.

Before it sends, a delivery of an event claims the mail it owes: it records
it (with its Message-ID) or, if it is recorded and unsent, takes it over,
for the mailer's ``claim_seconds``, in a committed statement. Once the SMTP
server accepted the mail, it records it as sent. So:

- an event delivered again after the mail was sent sends nothing;
- one delivered while another delivery of it is sending (a second instance,
  a replay) does not send either: :class:`MailInFlight`, and it is retried
  later, when the mail is sent or the claim has run out;
- one whose mail failed before the server accepted it sends the same
  message again, with the same Message-ID.

The one window left: the process dies after the server accepted the mail
and before ``sent_at`` is committed (one UPDATE of one row). Once the claim
runs out the event's next delivery sends the mail again, with the same
Message-ID, which mail clients and most mailbox providers show once.
"""
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from common.data.db import utcnow
from notifications.delivery import MailRefused
from notifications.messages import compose, new_message_id
from notifications.models import Mail


class MailInFlight(Exception):
    """Another delivery of the same event is sending this mail: try later."""


def send_once(session, mailer, kind, about_id, recipient, context):
    """Send the mail of ``kind`` about ``about_id`` unless it was sent; True
    if it was sent now, False if it had been before."""
    mail = _claim(session, mailer, kind, about_id, recipient)
    if mail is None:
        return False
    try:
        mailer.send(compose(kind, context, sender=mailer.sender, recipient=mail.recipient,
                            message_id=mail.message_id, date=utcnow()))
    except MailRefused:
        session.rollback()
        _set(session, mail, claimed_until=None, refused_at=utcnow())
        raise
    except Exception:
        session.rollback()
        _set(session, mail, claimed_until=None)  # the next delivery need not wait
        raise
    _set(session, mail, sent_at=utcnow(), claimed_until=None, refused_at=None)
    return True


def _claim(session, mailer, kind, about_id, recipient):
    """The mail, claimed by this delivery and committed; None if it was sent."""
    now = utcnow()
    until = now + timedelta(seconds=mailer.claim_seconds)
    mail = session.get(Mail, (kind, about_id))
    if mail is None:
        mail = Mail(kind=kind, about_id=about_id, recipient=recipient,
                    message_id=new_message_id(mailer.sender), attempts=1,
                    first_attempt_at=now, claimed_until=until)
        session.add(mail)
        try:
            session.commit()
            return mail
        except IntegrityError:  # recorded at this moment by another delivery
            session.rollback()
            mail = session.get(Mail, (kind, about_id))
    if mail.sent_at is not None:
        return None
    claimed = session.execute(
        update(Mail)
        .where(Mail.kind == kind, Mail.about_id == about_id, Mail.sent_at.is_(None),
               or_(Mail.claimed_until.is_(None), Mail.claimed_until <= now))
        .values(attempts=Mail.attempts + 1, claimed_until=until)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if not claimed:
        session.refresh(mail)
        if mail.sent_at is not None:
            return None
        raise MailInFlight(f"the {kind} mail about {about_id} is being sent by another delivery")
    session.refresh(mail)
    return mail


def _set(session, mail, **values):
    session.execute(update(Mail).where(Mail.kind == mail.kind, Mail.about_id == mail.about_id)
                    .values(**values).execution_options(synchronize_session=False))
    session.commit()
