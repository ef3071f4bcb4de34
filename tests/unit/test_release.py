"""make release's first step (tools.release): a release has its changelog
section, and its version comes after the current one; and the upgrade test
finds the last release."""
import json

import pytest

from tools import release
from tools.harness import upgrade
from tools.harness.upgrade import ROOT


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "0.2.0"\n')
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## 0.3.0 (2027-01-10)\n- Search\n")
    return tmp_path


def test_a_release_sets_the_version(project):
    release.main(["0.3.0"], root=project)
    assert 'version = "0.3.0"' in (project / "pyproject.toml").read_text()


def test_a_release_needs_its_changelog_section(project):
    with pytest.raises(SystemExit, match="CHANGELOG.md has no section for 0.4.0"):
        release.main(["0.4.0"], root=project)
    assert 'version = "0.2.0"' in (project / "pyproject.toml").read_text()


@pytest.mark.parametrize("version", ["0.2.0", "0.1.9", "1.0", "v0.3.0"])
def test_a_release_comes_after_the_current_version(project, version):
    with pytest.raises(SystemExit):
        release.main([version], root=project)
    assert 'version = "0.2.0"' in (project / "pyproject.toml").read_text()


def test_the_upgrade_test_finds_the_last_release_without_its_tag():
    """A clone may hold no tags: the commit that recorded the released
    contracts is the release, and its version is the contracts'."""
    base = upgrade.last_release()
    released = json.loads((ROOT / upgrade.RELEASED_CONTRACTS).read_text())["info"]["version"]
    pyproject = upgrade.git("show", f"{base}:pyproject.toml")
    assert release.VERSION_LINE.search(pyproject).group(1) == released
    assert upgrade.git("rev-parse", base) != upgrade.git("rev-parse", "HEAD")
