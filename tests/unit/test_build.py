"""Which build a service runs: version and revision, in its first log line."""
import logging
import subprocess

import pytest

from common import build
from common.container import ShopServiceContainer
from users.service import UsersService


@pytest.fixture
def fresh_build_info():
    build.build_info.cache_clear()
    yield build.build_info
    build.build_info.cache_clear()


def test_the_version_is_the_projects_and_the_revision_the_checkouts(fresh_build_info, monkeypatch):
    monkeypatch.delenv("SHOP_REVISION", raising=False)
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=build.ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    pyproject = (build.ROOT / "pyproject.toml").read_text()
    info = fresh_build_info()
    assert f'\nversion = "{info["version"]}"\n' in pyproject
    assert info["revision"] == head


def test_an_image_names_its_revision_in_the_environment(fresh_build_info, monkeypatch):
    monkeypatch.setenv("SHOP_REVISION", "0123456789ab")
    assert fresh_build_info()["revision"] == "0123456789ab"


def test_a_service_names_its_build_in_its_first_log_line(base_config, caplog):
    caplog.set_level(logging.INFO, logger="common.container")
    ShopServiceContainer(UsersService, base_config)
    info = build.build_info()
    # other threads of earlier tests may still log; only the container's lines count
    [line] = [record.getMessage() for record in caplog.records if record.name == "common.container"]
    assert line == f"users {info['version']} (revision {info['revision']})"
