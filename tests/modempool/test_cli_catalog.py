"""The `modempool` group imports a command's module only when that command runs
(modempool/commands/catalog.py): its list of commands and their modules,
and its `--help` must be what the modules themselves define."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from modempool.commands.catalog import CATALOG, Commands, register_all
from modempool.commands.errors import OneLineErrors

REPO = Path(__file__).resolve().parents[2]


def a_group(cls: type[click.Group]) -> click.Group:
    @click.group(cls=cls)
    def main() -> None:
        """modempool: drive a bank of GSM modems (短信猫) to send and receive SMS."""

    return main


def every_module_registering() -> set[str]:
    """The modules of modempool/commands that add commands to the top-level group."""
    import modempool.commands

    return {info.name for info in pkgutil.iter_modules(modempool.commands.__path__)
            if hasattr(importlib.import_module(f"modempool.commands.{info.name}"), "register")}


def test_the_catalog_names_every_command_of_every_module_and_no_other():
    eager = a_group(OneLineErrors)
    register_all(eager)
    assert sorted(eager.commands) == sorted(CATALOG)
    assert {m for modules in CATALOG.values() for m in modules} == every_module_registering()
    for name, modules in CATALOG.items():   # each name found where the catalog says
        alone = a_group(OneLineErrors)
        for module in modules:
            importlib.import_module(f"modempool.commands.{module}").register(alone)
        assert alone.commands[name].to_info_dict(click.Context(alone)) == \
            eager.commands[name].to_info_dict(click.Context(eager)), name


@pytest.mark.parametrize("width", [40, 80, 200])
def test_help_lists_each_command_with_the_line_its_module_gives(width):
    eager = a_group(OneLineErrors)
    register_all(eager)
    runner = CliRunner()
    shown = runner.invoke(a_group(Commands), ["--help"], terminal_width=width)
    assert shown.exit_code == 0, shown.output
    assert shown.output == runner.invoke(eager, ["--help"], terminal_width=width).output


@pytest.mark.parametrize("typed", ["sned", "acounts", "nothing-like-it"])
def test_a_mistyped_command_gets_the_suggestion_it_got_with_every_module_loaded(typed):
    eager = a_group(OneLineErrors)
    register_all(eager)
    runner = CliRunner()
    wrong = runner.invoke(a_group(Commands), [typed])
    assert wrong.exit_code == 2 and f"No such command '{typed}'" in wrong.output
    assert wrong.output == runner.invoke(eager, [typed]).output


def test_a_command_found_through_a_sibling_still_gets_what_another_module_adds():
    group = a_group(Commands)
    runner = CliRunner()
    assert runner.invoke(group, ["webhooks", "--help"]).exit_code == 0   # loads http's accounts
    shown = runner.invoke(group, ["accounts", "--help"])
    assert shown.exit_code == 0 and "passwd" in shown.output   # console's, added to it


#: Runs `modempool` as `-m cli` does, then names every module the process holds at its exit.
WHAT_IT_LOADED = ("import atexit, runpy, sys\n"
                  "atexit.register(lambda: print('MODULES', *sorted(sys.modules), file=sys.stderr))\n"
                  "sys.argv = ['modempool', *sys.argv[1:]]\n"
                  "runpy.run_module('cli', run_name='__main__', alter_sys=True)\n")


def imported_by(*args: str, cwd: Path) -> set[str]:
    """The modules a `modempool` command has imported by its end, after it succeeded."""
    loaded = subprocess.run([sys.executable, "-c", WHAT_IT_LOADED, *args],
                            cwd=cwd, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert loaded.returncode == 0, loaded.stderr
    [names] = [line.split()[1:] for line in loaded.stderr.splitlines()
               if line.startswith("MODULES ")]
    return set(names)


def test_a_command_that_needs_no_spool_does_not_import_it():
    modules = imported_by("pdu", "encode", "13800138000", "hi", cwd=REPO)
    assert "pdu.encode" in modules and "modempool.commands.codec" in modules
    assert not modules & {"modempool.spool.store", "modempool.pool", "modempool.commands.http",
                          "modempool.commands.messages"}


def test_a_command_that_asks_nothing_of_the_daemon_does_not_import_its_parts(config):
    from modempool.spool import Spool

    Spool(str(config.parent / "pool.db")).close()   # a spool to read (none is made for a read)
    modules = imported_by("contacts", "list", "--config", str(config), cwd=config.parent)
    assert {"modempool.pool", "modempool.spool.store"} <= modules
    assert not modules & {"modempool.pool_status", "modempool.dispatch.requests"}


def broken_install(tmp_path: Path, module: str, source: str | None) -> Path:
    """A copy of the installed tree (symbolic links) in which `modempool/commands/<module>.py`
    is lost (`source` None) or holds `source` (an upgrade that left it half-written)."""
    tree = tmp_path / "install"
    (tree / "modempool" / "commands").mkdir(parents=True)
    for top in ("cli.py", "pdu", "at_commands"):
        (tree / top).symlink_to(REPO / top)
    for entry in (REPO / "modempool").iterdir():
        if entry.name not in ("commands", "__pycache__"):
            (tree / "modempool" / entry.name).symlink_to(entry)
    for entry in (REPO / "modempool" / "commands").iterdir():
        if entry.name not in (f"{module}.py", "__pycache__"):
            (tree / "modempool" / "commands" / entry.name).symlink_to(entry)
    if source is not None:
        (tree / "modempool" / "commands" / f"{module}.py").write_text(source, encoding="utf-8")
    return tree


def modempool_in(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=tree, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200"})


@pytest.mark.parametrize("source, why", [
    (None, "No module named 'modempool.commands.codec'"),
    ("def register(group):\n    group.add_command(\n", "'(' was never closed"),
])
def test_a_command_module_that_cannot_be_imported_costs_only_its_own_command(tmp_path, source,
                                                                             why):
    """A broken install (a file lost, one left half-written): `--help` and a bare `modempool`
    list every command, the broken one as unavailable; running it is one line naming the module;
    the other commands work (audit24 L2: `--help` was a traceback since 079b1cb)."""
    tree = broken_install(tmp_path, "codec", source)
    assert (tree / "modempool").resolve() != (REPO / "modempool").resolve()
    shown = modempool_in(tree, "--help")
    assert shown.returncode == 0 and not shown.stderr, shown.stderr[-500:]
    [pdu] = [line for line in shown.stdout.splitlines() if line.split()[:1] == ["pdu"]]
    assert pdu.split() == "pdu unavailable: modempool.commands.codec cannot be imported".split()
    listed = {line.split()[0] for line in shown.stdout.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == set(CATALOG)
    bare = modempool_in(tree)   # the listing on standard error, as click gives it
    assert bare.returncode == 2 and bare.stderr == shown.stdout, bare.stderr[-500:]
    for args in (["pdu", "encode", "13800138000", "hi"], ["pdu", "--help"]):
        ran = modempool_in(tree, *args)
        assert ran.returncode == 1 and not ran.stdout, ran.stderr[-500:]
        [line] = ran.stderr.splitlines()
        assert line.startswith("Error: command 'pdu' is unavailable: modempool.commands.codec "
                               f"cannot be imported: {why}")
        assert line.endswith(" (a broken installation: reinstall modempool)")
    other = modempool_in(tree, "send", "--help")
    assert other.returncode == 0 and "Traceback" not in other.stderr and "--to" in other.stdout
