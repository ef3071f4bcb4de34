"""The products service in a real container, called over RabbitMQ."""
import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from common.errors import InvalidInput, NotFound
from products.service import ProductsService
from tests.helpers import event_recorder, waiting_for_event

pytestmark = pytest.mark.integration

EVENTS = [("products", event) for event in ("product_created", "product_updated", "product_deleted")]


@pytest.fixture
def recorder(container_factory, shop_config):
    Recorder, received = event_recorder(*EVENTS)
    container = container_factory(Recorder, shop_config)
    container.start()
    container.received = received
    return container


@pytest.fixture
def products(container_factory, shop_config):
    container_factory(ProductsService, shop_config).start()
    with ServiceRpcProxy("products", shop_config, timeout=10) as proxy:
        yield proxy


def test_a_product_lifecycle_publishes_an_event_at_each_step(recorder, products):
    with waiting_for_event(recorder, "product_created"):
        created = products.create(name="Kettle", price="39.90", description="1 l")
    with waiting_for_event(recorder, "product_updated"):
        updated = products.update(created["id"], {"price": "35.00"})
    with waiting_for_event(recorder, "product_deleted"):
        products.delete(created["id"])

    assert [(event_type, envelope["data"]) for event_type, envelope in recorder.received] == [
        ("product_created", created),
        ("product_updated", {**updated, "changed": ["price"]}),
        ("product_deleted", {"id": created["id"]}),
    ]
    assert len({envelope["event_id"] for _, envelope in recorder.received}) == 3


def test_prices_travel_as_exact_strings(products):
    created = products.create(name="Filter", price="0.10")
    assert products.get(created["id"])["price"] == "0.10"
    assert products.get_many([created["id"]])[0]["price"] == "0.10"


def test_listing_and_lookups_leave_deleted_products_out(products):
    kept = products.create(name="Cup", price="5.00")
    gone = products.create(name="Saucer", price="3.00")
    products.delete(gone["id"])
    assert products.list(limit=10, offset=0) == {"items": [kept], "total": 1}
    assert products.get_many([kept["id"], gone["id"]]) == [kept]
    with pytest.raises(NotFound):
        products.get(gone["id"])


def test_invalid_arguments_are_refused_with_details(products):
    with pytest.raises(InvalidInput) as error:
        products.create(name="", price="-1")
    assert set(error.value.details) == {"name", "price"}
