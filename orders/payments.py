"""Taking payment for an order, behind a dependency provider.

``PAYMENTS.PROVIDER`` in config.yaml names the provider class. It is built
once per service with the ``PAYMENTS`` settings and must offer
``charge(order_id, amount) -> payment id`` (raising :class:`PaymentDeclined`
when the payment is refused) and ``refund(payment_id)``. Swap the simulated
one for a real payment service's client without touching the orders code.
"""
import logging
import uuid

from nameko.extensions import DependencyProvider
from nameko.exceptions import ConfigurationError
from werkzeug.utils import import_string

log = logging.getLogger(__name__)


class PaymentDeclined(Exception):
    pass


class SimulatedPayments:
    """Approves every charge, or declines every one with ``DECLINE: true``."""

    def __init__(self, settings):
        self.decline = settings["DECLINE"]

    def charge(self, order_id, amount):
        if self.decline:
            raise PaymentDeclined("The simulated payment provider declines every payment")
        payment_id = f"sim_{uuid.uuid4().hex}"
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
