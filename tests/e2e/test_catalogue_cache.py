"""The catalogue cache across gateway instances: two gateways over one
products service, an admin's change through one seen through the other
within a second, a delete a 404 on both, and a new gateway starting cold."""
import re
import time

import pytest

from gateway.catalogue import CatalogueEventHandler

pytestmark = pytest.mark.e2e


def cache_counts(api):
    text = api.session.get(api.base_url + "/metrics", timeout=10).text
    return {name: float(value) for name, value in re.findall(
        r"^shop_catalogue_cache_(hits_total|misses_total|entries) (\S+)$", text, re.M)}


def invalidations(api):
    text = api.session.get(api.base_url + "/metrics", timeout=10).text
    return float(re.search(
        r"^shop_catalogue_cache_invalidations_total (\S+)$", text, re.M).group(1))


def new_product(api, admin, *gateways, **fields):
    """A new product, made through ``api``, once its ``product_created``
    event has reached every one of ``gateways``: the event drops the
    product from a cache, so a read before it arrives may be stored and
    then forgotten."""
    before = [(gateway, invalidations(gateway)) for gateway in gateways]
    product_id = api.product(admin, **fields)
    for gateway, count in before:
        # the gateway that made it also forgot it at once (read-your-writes)
        expected = count + (2 if gateway is api else 1)
        seconds_until(lambda gateway=gateway, expected=expected:
                      invalidations(gateway) >= expected)
    return product_id


def read_twice(api, product_id):
    """Reads the product twice: the second answer comes from memory."""
    before = cache_counts(api)
    first = api.call("GET", f"/products/{product_id}").json()
    assert api.call("GET", f"/products/{product_id}").json() == first
    after = cache_counts(api)
    assert after["hits_total"] == before["hits_total"] + 1, (before, after)
    return first


def broker_connection_from(rabbit_manager, port, timeout=15):
    """The management API's name of the connection from this client port
    (listed a few seconds after it opens, once its stats arrive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for connection in rabbit_manager.get_connections():
            if connection.get("peer_port") == port:
                return connection["name"]
        time.sleep(0.2)
    raise AssertionError(f"no broker connection from port {port}")


def seconds_until(condition, timeout=5):
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_change_through_one_gateway_is_seen_through_the_other_within_a_second(
        api, second_gateway):
    _, other = second_gateway()
    admin = api.admin_token()
    product_id = new_product(api, admin, api, other, price="10.00")
    read_twice(api, product_id)
    assert read_twice(other, product_id)["price"] == "10.00"
    other.call("GET", "/products")
    other.call("GET", "/products")  # the page, from memory too

    changed = api.call("PATCH", f"/products/{product_id}", token=admin, json={"price": "12.00"})
    assert changed.status_code == 200
    assert api.call("GET", f"/products/{product_id}").json()["price"] == "12.00"
    took = seconds_until(
        lambda: other.call("GET", f"/products/{product_id}").json()["price"] == "12.00")
    assert took < 1
    assert other.call("GET", "/products").json()["items"][0]["price"] == "12.00"


def test_a_deleted_product_is_a_404_on_both_gateways(api, second_gateway):
    _, other = second_gateway()
    admin = api.admin_token()
    product_id = new_product(api, admin, api, other)
    read_twice(api, product_id)
    read_twice(other, product_id)

    assert api.call("DELETE", f"/products/{product_id}", token=admin).status_code == 204
    assert api.call("GET", f"/products/{product_id}").status_code == 404
    took = seconds_until(
        lambda: other.call("GET", f"/products/{product_id}").status_code == 404)
    assert took < 1
    assert other.call("GET", "/products").json()["total"] == 0


def test_a_gateway_that_restarts_starts_cold(api, second_gateway):
    container, other = second_gateway()
    product_id = new_product(api, api.admin_token(), other)
    read_twice(other, product_id)
    assert cache_counts(other)["entries"] == 1
    container.stop()

    _, restarted = second_gateway()
    assert cache_counts(restarted) == {"hits_total": 0, "misses_total": 0, "entries": 0}
    restarted.call("GET", f"/products/{product_id}")
    assert cache_counts(restarted)["misses_total"] == 1


def test_a_gateway_that_lost_its_broker_connection_forgets_what_it_cached(
        api, second_gateway, rabbit_manager):
    container, other = second_gateway()
    product_id = new_product(api, api.admin_token(), other)
    read_twice(other, product_id)
    [consumer] = {e.queue_consumer for e in container.entrypoints
                  if isinstance(e, CatalogueEventHandler)}
    connection = consumer.consuming_connection
    port = connection.connection.sock.getsockname()[1]

    rabbit_manager.delete_connection(broker_connection_from(rabbit_manager, port))  # events published now would be missed
    seconds_until(lambda: consumer.consuming_connection is not connection, timeout=10)
    assert cache_counts(other)["entries"] == 0
    misses = cache_counts(other)["misses_total"]
    other.call("GET", f"/products/{product_id}")
    assert cache_counts(other)["misses_total"] == misses + 1


@pytest.mark.parametrize("settings", [{"CATALOGUE_CACHE": {"ENABLED": False}}])
def test_with_the_cache_off_every_read_goes_to_the_products_service(api, settings):
    product_id = api.product(api.admin_token())
    for _ in range(3):
        assert api.call("GET", f"/products/{product_id}").status_code == 200
    assert cache_counts(api) == {"hits_total": 0, "misses_total": 3, "entries": 0}
