"""The list of system packages is one list: scripts/test installs it and the README shows it."""

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


def test_ci_and_readme_run_the_same_entry_point():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "exec scripts/test" in ci
    assert "```sh\nscripts/test\n```" in readme


def test_missing_program_names_its_package():
    packages = system_packages()
    package, programs = next(iter(packages.items()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", "/nonexistent")
        with pytest.raises(AssertionError) as failure:
            require_program(programs[0])
    assert f"sudo apt-get install {package}" in str(failure.value)
