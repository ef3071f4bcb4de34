"""Create a few products with stock, so a new shop has something to show
(``make demo-data``).

Idempotent: a product whose name is already in the catalogue is not created
(or restocked) again. The services must be running (``make run`` in another
terminal).
"""
import argparse
import sys

from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ClusterRpcProxy

from common.config import DEFAULT_CONFIG_PATH, load_config

DEMO_STOCK = 25
DEMO_PRODUCTS = [
    {"name": "Espresso cup", "price": "7.50", "description": "Porcelain, 80 ml."},
    {"name": "Pour-over kettle", "price": "39.00", "description": "Gooseneck, 1 litre."},
    {"name": "Coffee beans, 1 kg", "price": "24.90", "description": "Medium roast."},
    {"name": "Hand grinder", "price": "59.95", "description": "Ceramic burrs."},
    {"name": "Paper filters (100)", "price": "4.20", "description": "Size 02."},
]


def catalogue_names(products):
    names, offset = set(), 0
    while True:
        page = products.list(limit=100, offset=offset)
        names.update(item["name"] for item in page["items"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return names


def load_demo_data(rpc):
    """Create the demo products missing from the catalogue; one line per product."""
    existing = catalogue_names(rpc.products)
    for product in DEMO_PRODUCTS:
        if product["name"] in existing:
            yield f"exists:  {product['name']}"
        else:
            created = rpc.products.create(**product)
            rpc.inventory.add_stock(created["id"], DEMO_STOCK)
            yield (f"created: {created['name']} (id {created['id']}, {created['price']}, "
                   f"{DEMO_STOCK} in stock)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        with ClusterRpcProxy(config, timeout=10) as rpc:
            for line in load_demo_data(rpc):
                print(line)
    except RpcTimeout:
        sys.exit("Error: the shop's services did not answer. Is `make run` running?")


if __name__ == "__main__":
    main()
