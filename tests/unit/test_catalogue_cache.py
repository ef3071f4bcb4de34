"""The gateway's catalogue cache as plain Python: hits and misses, what an
event forgets, TTL, LRU, and the reads it must not keep."""
import pytest

from gateway.catalogue import Catalogue


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Products:
    """A products service: answers, and counts how often it was asked."""

    def __init__(self):
        self.prices = {1: "1.00", 2: "2.00", 3: "3.00"}
        self.calls = 0

    def get(self, product_id):
        self.calls += 1
        return {"id": product_id, "price": self.prices[product_id]}

    def list(self, limit, offset):
        self.calls += 1
        ids = sorted(self.prices)[offset:offset + limit]
        return {"items": [{"id": i, "price": self.prices[i]} for i in ids],
                "total": len(self.prices)}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def catalogue(clock):
    catalogue = Catalogue(max_entries=3, ttl_seconds=30, clock=clock)
    catalogue.go_live()
    return catalogue


def test_a_second_read_is_answered_from_memory(catalogue):
    products = Products()
    assert catalogue.product(1, products.get) == {"id": 1, "price": "1.00"}
    assert catalogue.product(1, products.get) == {"id": 1, "price": "1.00"}
    assert products.calls == 1
    assert (catalogue.hits, catalogue.misses) == (1, 1)


def test_an_event_forgets_its_product_and_every_page_but_not_other_products(catalogue):
    products = Products()
    catalogue.product(1, products.get)
    catalogue.product(2, products.get)
    catalogue.page(products.list, limit=2, offset=0)
    products.prices[1] = "9.00"
    catalogue.forget(1)
    calls = products.calls
    assert catalogue.product(1, products.get)["price"] == "9.00"
    assert catalogue.page(products.list, limit=2, offset=0)["items"][0]["price"] == "9.00"
    catalogue.product(2, products.get)
    assert products.calls == calls + 2  # product 1 and the page; product 2 from memory


def test_an_answer_read_before_a_change_is_not_kept(catalogue):
    products = Products()

    def read_then_the_event_arrives(product_id):
        answer = products.get(product_id)   # the old price
        products.prices[product_id] = "9.00"
        catalogue.forget(product_id)        # the event, while the answer travels
        return answer

    assert catalogue.product(1, read_then_the_event_arrives)["price"] == "1.00"
    assert catalogue.product(1, products.get)["price"] == "9.00"


def test_an_entry_lives_at_most_the_ttl(catalogue, clock):
    products = Products()
    catalogue.product(1, products.get)
    products.prices[1] = "9.00"  # and its event lost
    clock.now += 29
    assert catalogue.product(1, products.get)["price"] == "1.00"
    clock.now += 2
    assert catalogue.product(1, products.get)["price"] == "9.00"


def test_the_least_recently_used_entry_goes_first(catalogue):
    products = Products()
    for product_id in (1, 2, 3):
        catalogue.product(product_id, products.get)
    catalogue.product(1, products.get)             # 2 is now the least recently used
    catalogue.page(products.list, limit=1, offset=0)            # a fourth entry
    assert len(catalogue) == 3
    calls = products.calls
    catalogue.product(1, products.get)
    catalogue.product(3, products.get)
    assert products.calls == calls
    catalogue.product(2, products.get)
    assert products.calls == calls + 1


def test_a_cold_cache_serves_and_keeps_nothing(catalogue):
    products = Products()
    catalogue.product(1, products.get)
    catalogue.go_cold()  # the broker connection is lost: events may be missed
    assert len(catalogue) == 0
    catalogue.product(1, products.get)
    catalogue.product(1, products.get)
    assert products.calls == 3 and len(catalogue) == 0
    catalogue.go_live()
    catalogue.product(1, products.get)
    catalogue.product(1, products.get)
    assert products.calls == 4


def test_a_new_cache_is_cold_until_its_events_flow(clock):
    products = Products()
    catalogue = Catalogue(max_entries=10, ttl_seconds=30, clock=clock)
    catalogue.product(1, products.get)
    catalogue.product(1, products.get)
    assert products.calls == 2


def test_an_error_is_not_kept(catalogue):
    def missing(product_id):
        raise LookupError(product_id)

    with pytest.raises(LookupError):
        catalogue.product(7, missing)
    assert len(catalogue) == 0
