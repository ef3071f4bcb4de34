"""The layout's rules, read from the code's imports: what each part of
``common`` may use (common/__init__.py), services that talk to each other
only over the broker, and commands kept apart from the test harnesses."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("users", "products", "inventory", "orders", "notifications", "gateway")
BASE = {"common.config", "common.errors", "common.schemas", "common.container",
        "common.contracts", "common.build"}
# each part of common, and the parts it may import besides its own
COMMON_PARTS = {
    "base": {"base"},
    "common.data": {"base"},
    "common.web": {"base"},
    "common.observability": {"base"},
    "common.messaging": {"base", "common.data", "common.observability"},
}


def module_name(path):
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(path):
    """Every module ``path`` imports, at its top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def python_files(*folders):
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def common_part(module):
    """``base``, or the package of common that ``module`` is in."""
    package = ".".join(module.split(".")[:2])
    return "base" if package in BASE or module == "common" else package


def common_imports(path):
    """The parts of common that ``path`` imports."""
    return {common_part(module) for module in imported_modules(path)
            if module == "common" or module.startswith("common.")}


@pytest.mark.parametrize("path", python_files("common"), ids=lambda path: module_name(path))
def test_each_part_of_common_imports_only_what_it_may(path):
    part = common_part(module_name(path))
    allowed = COMMON_PARTS[part] | {part}
    assert common_imports(path) <= allowed, (
        f"{module_name(path)} ({part}) may import {sorted(allowed)}")


def test_the_rules_find_an_import_that_breaks_them(tmp_path):
    module = tmp_path / "web_module.py"
    module.write_text("def later():\n    from common.messaging.rpc import ServiceRpc\n")
    assert common_imports(module) == {"common.messaging"}


def test_every_part_of_common_says_what_it_holds():
    for package in ROOT.glob("common/*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(package.read_text()))
        assert docstring and "May import" in docstring, package


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another_service(service):
    others = set(SERVICES) - {service}
    for path in python_files(service):
        for module in imported_modules(path):
            assert module.split(".")[0] not in others | {"tools", "tests"}, (
                f"{path.relative_to(ROOT)} imports {module}")


def test_common_and_the_commands_never_import_the_harnesses():
    for path in python_files("common", *SERVICES) + sorted((ROOT / "tools").glob("*.py")):
        for module in imported_modules(path):
            assert not module.startswith("tools.harness"), (
                f"{path.relative_to(ROOT)} imports {module}")
            assert path.parts[-2] == "tools" or not module.startswith("tools"), (
                f"{path.relative_to(ROOT)} imports {module}")
