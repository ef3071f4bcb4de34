"""The container health check command against a running service and a missing one."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from products.service import ProductsService

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def healthcheck(service, shop_config):
    env = {**os.environ, "AMQP_URI": shop_config["AMQP_URI"],
           "PRODUCTS_DB_URI": shop_config["DB_URIS"]["products"], "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "tools.healthcheck", service], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30)


def test_the_healthcheck_passes_for_a_running_service_and_fails_for_a_missing_one(
        container_factory, shop_config):
    container_factory(ProductsService, shop_config).start()
    ready = healthcheck("products", shop_config)
    assert ready.returncode == 0 and ready.stdout == "products is ready\n"
    missing = healthcheck("orders", shop_config)
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[-1].startswith("orders is not ready: UnknownService")
