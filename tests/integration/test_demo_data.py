"""``make demo-data`` against running services: products with stock, once."""
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from inventory.service import InventoryService
from products.service import ProductsService
from tools.demo_data import DEMO_PRODUCTS, DEMO_STOCK, load_demo_data

pytestmark = pytest.mark.integration


def test_demo_data_creates_stocked_products_once(runner_factory, shop_config):
    runner_factory(shop_config, ProductsService, InventoryService).start()
    with ClusterRpcProxy(shop_config, timeout=10) as rpc:
        first = list(load_demo_data(rpc))
        second = list(load_demo_data(rpc))
        listing = rpc.products.list(limit=100, offset=0)
        stocks = rpc.inventory.get_stocks([item["id"] for item in listing["items"]])

    assert all(line.startswith("created: ") for line in first)
    assert all(line.startswith("exists: ") for line in second)
    assert listing["total"] == len(DEMO_PRODUCTS)
    assert {stock["on_hand"] for stock in stocks} == {DEMO_STOCK}
