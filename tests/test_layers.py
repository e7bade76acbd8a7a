"""The layers, checked: `pdu` imports nothing of ours, `at_commands` only `pdu`, `simulator` no
`modempool`, `modempool` imports `simulator` only where a simulated bank is asked for, and
nothing imports `cli` (the commands are reached through the `modempool` entry point)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.source_imports import top_level_imports

ROOT = Path(__file__).resolve().parent.parent
OURS = ("pdu", "at_commands", "modempool", "simulator", "cli")
ALLOWED = {
    "pdu": set(),
    "at_commands": {"pdu"},
    "simulator": {"pdu", "at_commands"},
    "modempool": {"pdu", "at_commands", "modempool"},
}
# Where the pool may start a simulated bank (`--simulate N`, `[simulator]`, `modempool demo`),
# and the `modempool sim ...` commands that run one.
SIMULATOR_USERS = {"modempool/dispatch/daemon.py", "modempool/demo.py",
                   "modempool/commands/simulate.py"}


def imports_of(path: Path) -> set[str]:
    """The top-level packages of ours that a file imports (anywhere in it, lazily too)."""
    return top_level_imports(path) & set(OURS)


def files_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_back_edges(package):
    wrong = []
    for path in files_of(package):
        name = path.relative_to(ROOT).as_posix()
        allowed = ALLOWED[package] | ({"simulator"} if name in SIMULATOR_USERS else set())
        if package == "simulator":
            allowed = allowed | {"simulator"}
        wrong += [f"{name} imports {bad}" for bad in sorted(imports_of(path) - allowed)]
    assert wrong == []


def test_nothing_imports_cli():
    users = [path.relative_to(ROOT).as_posix()
             for package in [*ALLOWED, "tests", "benchmarks"] for path in files_of(package)
             if "cli" in imports_of(path)]
    assert users == []


def test_the_check_sees_a_back_edge(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from modempool.spool import Spool\n    import cli\n", "utf-8")
    assert imports_of(bad) == {"modempool", "cli"}
