"""Taking payment for an order, behind a dependency provider.

``PAYMENTS.PROVIDER`` in config.yaml names the provider class. It is built
once per service with the ``PAYMENTS`` settings and must offer
``charge(order_id, amount, idempotency_key) -> payment id`` (raising
:class:`PaymentDeclined` when the payment is refused) and
``refund(payment_id)``. Swap the simulated one for a real payment service's
client without touching the orders code.

Every charge carries an idempotency key made from the order
(:func:`charge_key`), as payment APIs take one: a charge sent again with the
same key, because its answer was lost or the orders service died before it
recorded the payment, answers the first charge's payment instead of charging
again. A declined charge counts as an attempt, so the next one is new.
"""
import logging
import uuid
from collections import OrderedDict

from nameko.extensions import DependencyProvider
from nameko.exceptions import ConfigurationError
from werkzeug.utils import import_string

log = logging.getLogger(__name__)


class PaymentDeclined(Exception):
    pass


def charge_key(order_id, declined_attempts):
    """The provider's idempotency key for an order's next charge."""
    return f"order-{order_id}-attempt-{declined_attempts + 1}"


class SimulatedPayments:
    """Approves every charge, or declines every one with ``DECLINE: true``.

    Like a real provider, it answers a charge whose key it has seen with the
    first charge's payment id. It keeps the last ``REMEMBERED_KEYS`` keys in
    memory, so it forgets them when the orders service restarts, where a
    real provider keeps them for a day or more."""

    REMEMBERED_KEYS = 100_000

    def __init__(self, settings):
        self.decline = settings["DECLINE"]
        self.payments_by_key = OrderedDict()

    def charge(self, order_id, amount, idempotency_key):
        if idempotency_key in self.payments_by_key:
            payment_id = self.payments_by_key[idempotency_key]
            log.info("charge for order %s sent again: payment %s", order_id, payment_id)
            return payment_id
        if self.decline:
            raise PaymentDeclined("The simulated payment provider declines every payment")
        payment_id = f"sim_{uuid.uuid4().hex}"
        self.payments_by_key[idempotency_key] = payment_id
        if len(self.payments_by_key) > self.REMEMBERED_KEYS:
            self.payments_by_key.popitem(last=False)
        log.info("charged %s for order %s: payment %s", amount, order_id, payment_id)
        return payment_id

    def refund(self, payment_id):
        log.info("refunded payment %s", payment_id)


class Payments(DependencyProvider):
    def setup(self):
        settings = self.container.config["PAYMENTS"]
        try:
            provider_cls = import_string(settings["PROVIDER"])
        except ImportError as exc:
            raise ConfigurationError(f"PAYMENTS.PROVIDER: cannot import {exc}") from None
        self.provider = provider_cls(settings)

    def get_dependency(self, worker_ctx):
        return self.provider
