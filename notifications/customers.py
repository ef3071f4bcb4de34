"""The service's own copy of the customers it mails, kept from the users
service's events."""
from notifications.models import Customer


def keep(session, user):
    """Record (or update) a customer from a user event's data, and commit."""
    session.merge(Customer(id=user["id"], username=user["username"], email=user["email"]))
    session.commit()
