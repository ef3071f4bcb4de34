"""Which build of the shop this process runs: its version (pyproject.toml)
and git revision, as the services report them in their first log line, in
their health answers and as the ``shop_build_info`` metric."""
import functools
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"


@functools.cache
def build_info():
    """``{"version": "0.2.0", "revision": "1a2b3c4d5e6f"}``. The revision is
    ``SHOP_REVISION`` when set (an image has no git history: the build sets
    it), else the checkout's commit, else "unknown"."""
    try:
        shop_version = version("shop")
    except PackageNotFoundError:
        shop_version = UNKNOWN
    return {"version": shop_version, "revision": os.environ.get("SHOP_REVISION") or _git_revision()}


def _git_revision():
    if not (ROOT / ".git").exists():
        return UNKNOWN
    try:
        answer = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    return answer.stdout.strip() if answer.returncode == 0 else UNKNOWN
