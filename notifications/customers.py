"""The service's own copy of the customers it mails, kept from the users
service's events; one it has not heard of yet is asked of the users service
once, and kept."""
from notifications.models import Customer
from notifications.schemas import UserSchema


def keep(session, user):
    """Record (or update) a customer from a user event's data, and commit."""
    session.merge(Customer(id=user["id"], username=user["username"], email=user["email"]))
    session.commit()


def find(session, users, user_id):
    """The :class:`Customer` ``user_id``, from the copy or else from
    ``users.get_user`` (an RPC proxy), kept for the next mail."""
    customer = session.get(Customer, user_id)
    if customer is None:
        session.rollback()  # a slow users service must not hold a connection
        keep(session, UserSchema().load(users.get_user(user_id)))
        customer = session.get(Customer, user_id)
    return customer
