"""Which module of `modempool/commands/` defines each top-level command: the `modempool` group
imports a command's module only when that command runs (`--help` imports them all: its lines are
the commands' own docstrings). A module that cannot be imported costs only its own commands:
`--help` lists them as unavailable, running one says why in one line.

Importing every module at each start cost a command about a tenth of a second of modules it never
used (the spool and the pool behind `pdu encode`, the HTTP API's behind `send`).
tests/modempool/test_cli_catalog.py checks that the catalog and the modules agree.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import click

from modempool.commands.errors import OneLineErrors

#: Each command: the modules that register it (in this order).
CATALOG: dict[str, tuple[str, ...]] = {
    "accounts": ("http", "console"),
    "autoreply": ("autoreply",),
    "backup": ("jobs",),
    "campaign": ("campaigns",),
    "cancel": ("messages",),
    "contacts": ("contacts",),
    "demo": ("daemon",),
    "discover": ("box",),
    "doctor": ("box",),
    "forward": ("forward",),
    "groups": ("contacts",),
    "history": ("history",),
    "inbox": ("messages",),
    "init": ("messages",),
    "jobs": ("jobs",),
    "optout": ("optout",),
    "pdu": ("codec",),
    "probe": ("probe",),
    "queue": ("messages",),
    "retry": ("messages",),
    "run": ("daemon",),
    "send": ("messages",),
    "serve": ("http",),
    "sim": ("simulate",),
    "spool": ("spool",),
    "status": ("messages",),
    "systemd-unit": ("box",),
    "udev": ("box",),
    "ussd": ("box",),
    "webhooks": ("http",),
}


def register_all(group: click.Group) -> None:
    """Register every command of CATALOG on `group` at once (what `modempool` did at each start
    before it had CATALOG)."""
    loaded: set[str] = set()
    for modules in CATALOG.values():
        load(group, modules, loaded)


def load(group: click.Group, modules: tuple[str, ...], loaded: set[str],
         broken: dict[str, str] | None = None) -> None:
    """Register on `group` the commands of `modules` not yet in `loaded` (each module's
    `register`, in order: `console` adds `passwd` to the `accounts` of `http`). With `broken`,
    a module that cannot be imported (a broken install: a file lost, or left half-written by an
    upgrade) is skipped and kept there with why, in one line; without, its error is raised."""
    for module in modules:
        if module in loaded or (broken is not None and module in broken):
            continue
        try:
            importlib.import_module(f"modempool.commands.{module}").register(group)
        except (ImportError, SyntaxError) as exc:
            if broken is None:
                raise
            broken[module] = _why(exc)
            continue
        loaded.add(module)


def _why(exc: ImportError | SyntaxError) -> str:
    """Why a module could not be imported, in one line."""
    if isinstance(exc, SyntaxError):
        return f"{exc.msg} ({exc.filename}, line {exc.lineno})"
    return " ".join(str(exc).split())


def unavailable(name: str, module: str, why: str) -> click.Command:
    """What stands for command `name` whose module cannot be imported: `--help` lists it as
    such, and running it (whatever its arguments) fails in one line; the others still work."""
    def fail(**_: Any) -> None:
        raise click.ClickException(f"command {name!r} is unavailable: modempool.commands.{module} "
                                   f"cannot be imported: {why} (a broken installation: reinstall "
                                   "modempool)")

    return click.Command(name, callback=fail, add_help_option=False,
                         short_help=f"unavailable: modempool.commands.{module} cannot be imported",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


#: What click (8.2 and later) raises for an unknown command, with its suggestions.
_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", ())


class Commands(OneLineErrors):
    """The `modempool` group: it lists its commands from CATALOG and imports a command's
    modules when that command is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()
        self._broken: dict[str, str] = {}   # module -> why it cannot be imported

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(CATALOG) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in CATALOG:
            load(self, CATALOG[name], self._loaded, self._broken)
            for module in CATALOG[name]:
                if module in self._broken:
                    return unavailable(name, module, self._broken[module])
        return self.commands.get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _NO_SUCH_COMMAND as exc:   # its "Did you mean" looks at the loaded ones only
            exc.possibilities = difflib.get_close_matches(exc.command_name,
                                                          self.list_commands(ctx)) or None
            raise

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        load(self, tuple(module for modules in CATALOG.values() for module in modules),
             self._loaded, self._broken)   # `--help` shows each command's line, its docstring's
        super().format_commands(ctx, formatter)
