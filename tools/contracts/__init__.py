"""The shop's contracts, all together: every service's (``<service>/contract.py``),
the AsyncAPI document built from them, and the compatibility gate that holds
them against the last release's.

    python -m tools.contracts write     # regenerate gateway/asyncapi.json (make contracts)
    python -m tools.contracts check     # the gate: what would break the last release (make test)
    python -m tools.contracts release   # snapshot this release's contracts (make release)
"""
from importlib.metadata import version
from pathlib import Path

from inventory.contract import CONTRACT as INVENTORY
from notifications.contract import CONTRACT as NOTIFICATIONS
from orders.contract import CONTRACT as ORDERS
from products.contract import CONTRACT as PRODUCTS
from tools.contracts import asyncapi
from users.contract import CONTRACT as USERS

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = (USERS, PRODUCTS, INVENTORY, ORDERS, NOTIFICATIONS)
# served by the gateway at /asyncapi.json
CURRENT = ROOT / "gateway" / "asyncapi.json"
# the contracts of the last release, which the gate holds the current ones to
RELEASED = ROOT / "contracts" / "released.asyncapi.json"


def current_document():
    return asyncapi.build(CONTRACTS, version("shop"))
