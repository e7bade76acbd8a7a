"""The list of system packages is one list: scripts/install-system-packages installs it and the
README shows it; CI runs the README's test command verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.programs import require_program, system_packages

ROOT = Path(__file__).resolve().parent.parent


def test_readme_shows_every_system_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### System packages", 1)[1].split("\n## ", 1)[0]
    for package in system_packages():
        assert f"`{package}`" in section, f"README's system packages omit {package}"


def test_ci_runs_the_readmes_test_command_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [block.split("\n", 1)[1].strip() for block in quick_start.split("```sh")[1:]]
    assert len(commands) == 2, "the quick start is two commands"
    test_command = commands[1].split("```")[0].strip()
    assert "pytest" in test_command
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_missing_program_names_its_package():
    packages = system_packages()
    package, programs = next(iter(packages.items()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", "/nonexistent")
        with pytest.raises(AssertionError) as failure:
            require_program(programs[0])
    assert f"sudo apt-get install {package}" in str(failure.value)
