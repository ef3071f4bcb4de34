"""/health and /health/ready over real HTTP, with every service running and
with one of them gone."""
import time

import pytest
from nameko.testing.utils import get_container

from common.build import build_info
from products.service import ProductsService

pytestmark = pytest.mark.e2e


def test_health_and_readiness_when_everything_runs(api):
    build = build_info()
    running = {name: {"status": "ok", **build}
               for name in ("users", "products", "inventory", "orders")}
    assert api.call("GET", "/health").json() == {"status": "ok", **build, "services": running}
    ready = api.call("GET", "/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "services": running}


def test_readiness_names_the_service_that_does_not_answer(api, runner):
    get_container(runner, ProductsService).kill()
    started = time.monotonic()
    ready = api.call("GET", "/health/ready")
    assert ready.status_code == 503 and time.monotonic() - started < 2
    assert ready.json()["message"] == "Not ready: products"
    services = ready.json()["services"]
    assert services["products"] == {"status": "unavailable", "error": "no answer within 1 s"}
    assert all(services[name]["status"] == "ok" for name in ("users", "inventory", "orders"))
    health = api.call("GET", "/health")
    assert health.status_code == 200
    assert health.json()["services"]["products"]["status"] == "unavailable"
