"""The commands as one shell: the same `--config` and `--json` everywhere, and the operator
commands' bad input as one clear line (values are read by the library, not by the commands)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[2]


def every_command() -> Iterator[tuple[str, click.Command]]:
    """Each command and subcommand that a module of modempool/commands defines."""
    import modempool.commands

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                yield from walk(sub, f"{path} {name}")

    for module_info in pkgutil.iter_modules(modempool.commands.__path__):
        module = importlib.import_module(f"modempool.commands.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, click.Command):
                yield from walk(value, value.name or "?")


def test_every_command_spells_config_and_json_the_same():
    from modempool.commands.output import config_option, json_option

    [shared_config] = config_option(lambda: None).__click_params__
    seen = {"--config": 0, "--json": 0}
    for name, command in every_command():
        for param in command.params:
            if "--config" in param.opts or param.name == "config_path":
                assert (param.opts, param.name, param.help) == (
                    shared_config.opts, "config_path", shared_config.help), name
                seen["--config"] += 1
            if "--json" in param.opts or param.name == "as_json":
                assert (param.opts, param.name, param.is_flag) == (["--json"], "as_json", True), name
                seen["--json"] += 1
    assert seen["--config"] >= 40 and seen["--json"] >= 40   # the walk reached the commands


def run(site: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(site / "modempool.toml")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_bad_operator_values_are_one_line_and_store_nothing(tmp_path):
    (tmp_path / "modempool.toml").write_text(
        '[spool]\npath = "pool.db"\n[[modem]]\nname = "m1"\nport = "/dev/null"\n', encoding="utf-8")
    birthday = run(tmp_path, "contacts", "add", "13800138000", "--birthday", "13月45日")
    assert birthday.returncode == 1 and "Traceback" not in birthday.stderr
    assert birthday.stderr.strip().splitlines() == [
        "Error: birthday '13月45日' is not a date like 1990-05-17 or 05-17"]
    field = run(tmp_path, "contacts", "add", "13800138000", "--field", "班级")
    assert field.returncode == 2 and "KEY=VALUE" in field.stderr
    sim = run(tmp_path, "campaign", "create", "x", "--to", "13800138000", "--text", "hi",
              "--sim", "m9")
    assert sim.returncode == 1 and "m9" in sim.stderr and "Traceback" not in sim.stderr
    listed = run(tmp_path, "contacts", "list", "--json")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]"
    assert run(tmp_path, "campaign", "list", "--json").stdout.strip() == "[]"
