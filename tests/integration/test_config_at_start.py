"""``nameko run`` with a bad setting stops with one line naming it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMEKO = str(Path(sys.executable).parent / "nameko")


@pytest.mark.parametrize("variable, value, named", [
    ("USERS_DB_URI", "nonsense", "DB_URIS.users"),
    ("JWT_SECRET", "too-short", "JWT.SECRET"),
    ("MAX_WORKERS", "many", "max_workers"),
    ("SHOP_ENV", "production", "JWT.SECRET: is the development default"),
])
def test_a_bad_setting_stops_the_service_with_one_line(variable, value, named):
    result = subprocess.run(
        [NAMEKO, "run", "--config", "config.yaml", "users.service"],
        cwd=ROOT, env={**os.environ, variable: value, "PYTHONWARNINGS": "ignore"},
        capture_output=True, text=True, timeout=30)
    output = (result.stdout + result.stderr).strip()
    assert output.startswith("Error: Invalid settings in config.yaml:")
    assert named in output
    assert len(output.splitlines()) == 1
    assert "Traceback" not in output
