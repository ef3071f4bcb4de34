"""The first step of ``make release VERSION=x.y.z``: check that CHANGELOG.md
has the release's section and set the version in pyproject.toml. (The
Makefile then reinstalls and records the release's contracts.)

    python -m tools.release 0.3.0
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION_LINE = re.compile(r'^version = "([^"]+)"$', re.MULTILINE)


def as_tuple(version):
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise SystemExit(f"error: {version!r} is not a version such as 0.3.0")
    return tuple(int(part) for part in version.split("."))


def main(argv=None, root=ROOT):
    [version] = argv if argv is not None else sys.argv[1:] or [""]
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    current = VERSION_LINE.search(text).group(1)
    if as_tuple(version) <= as_tuple(current):
        raise SystemExit(f"error: {version} is not after {current}, the current version")
    if not re.search(rf"^## {re.escape(version)} ", (root / "CHANGELOG.md").read_text(),
                     re.MULTILINE):
        raise SystemExit(f"error: CHANGELOG.md has no section for {version}: add "
                         f"'## {version} (YYYY-MM-DD)' with the release's changes first")
    pyproject.write_text(VERSION_LINE.sub(f'version = "{version}"', text, count=1))
    print(f"version {current} -> {version} in pyproject.toml")


if __name__ == "__main__":
    main()
