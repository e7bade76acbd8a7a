"""Every third-party module that the product imports (not the tests) is installed by
`pip install .`: a runtime dependency in pyproject.toml, or one of theirs. A module that only the
test extras bring works in the suite and fails on a user's machine."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from tests.source_imports import top_level_imports

ROOT = Path(__file__).resolve().parent.parent
OURS = {"pdu", "at_commands", "modempool", "simulator", "cli"}


def _imported_modules() -> dict[str, Path]:
    """Top-level module name -> one file of the product that imports it."""
    files = [ROOT / "cli.py"] + sorted(path for package in OURS - {"cli"}
                                       for path in (ROOT / package).rglob("*.py"))
    found: dict[str, Path] = {}
    for path in files:
        for module in top_level_imports(path):
            found.setdefault(module, path)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_by_pip_install() -> set[str]:
    """The distributions `pip install .` brings: our dependencies and theirs, with extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    seen: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = _normal(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(requirement.name) or []:
            sub = Requirement(text)
            extras = requirement.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra})
                                         for extra in extras):
                wanted.append(sub)
    return seen


def test_every_imported_package_is_a_runtime_dependency():
    providers = metadata.packages_distributions()
    installed = _installed_by_pip_install()
    missing = []
    for module, path in sorted(_imported_modules().items()):
        if module in OURS or module in sys.stdlib_module_names or module == "__future__":
            continue
        distributions = providers.get(module)
        assert distributions, f"{path.relative_to(ROOT)} imports {module}, which is not installed"
        if not any(_normal(name) in installed for name in distributions):
            missing.append(f"{module} ({path.relative_to(ROOT)})")
    assert not missing, "imported but not a runtime dependency: " + ", ".join(missing)
