"""Which module of `modempool/commands/` defines each top-level command, and the line `--help`
shows for it: the `modempool` group imports a command's module only when that command runs.

Importing every module at each start cost a command about a tenth of a second of modules it never
used (the spool and the pool behind `pdu encode`, the HTTP API's behind `send`). The lines below
are each command's first sentence, as click would make it from the docstring;
tests/modempool/test_cli_catalog.py checks that they and the modules agree.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import click

from modempool.commands.errors import OneLineErrors

#: Each command: the modules that register it (in this order), and its help's first sentence.
CATALOG: dict[str, tuple[tuple[str, ...], str]] = {
    "accounts": (("http", "console"), "API accounts and their keys (docs/http.md)."),
    "autoreply": (("autoreply",),
                  "Auto-reply (自动回复) rules; config [[autoreply]] rules apply too."),
    "backup": (("jobs",), "Consistent copy of the database, safe while the daemon runs."),
    "campaign": (("campaigns",), "Bulk sending (群发) with per-recipient text, preview, "
                                 "pause/resume, report."),
    "cancel": (("messages",), "Cancel queued message(s)."),
    "contacts": (("contacts",), "Address book (通讯录): import, list, export contacts."),
    "demo": (("daemon",), "Send a handful of messages and a small campaign through a simulated "
                          "bank; show where they went, the replies (with the contacts' names) "
                          "and an opt-out (退订)."),
    "discover": (("box",), "Find the modems: which ports answer AT, and which modem and SIM is "
                           "behind each."),
    "doctor": (("box",), "Check this box for what stops a modem bank: ModemManager, group "
                         "dialout, ports held by other programs, udev rules, the spool's disk, "
                         "the clock, missing ports, refused PINs."),
    "forward": (("forward",), "Forwarding (转发) received SMS to numbers, while the daemon runs."),
    "groups": (("contacts",), "Contact groups (分组); combine them at send time as A+B-C."),
    "history": (("history",), "Search sent and received messages; export to CSV/XLSX."),
    "inbox": (("messages",), "List received messages, oldest first."),
    "init": (("messages",), "Write a commented example config (to --config, default "
                            "./modempool.toml)."),
    "jobs": (("jobs",), "Recurring sends: birthday greetings (生日祝福), daily and weekly "
                        "notices; the daemon runs them."),
    "optout": (("optout",), "Opt-outs (退订) and the blacklist (黑名单)."),
    "pdu": (("codec",), "Encode and decode SMS PDUs (TS 23.040), no modem needed."),
    "probe": (("probe",), "Open one modem on PORT, initialise it and print who and how it is."),
    "queue": (("messages",), "List messages in the spool, oldest first."),
    "retry": (("messages",), "Queue failed, expired or ambiguous message(s) again (for "
                             "ambiguous: may send twice)."),
    "run": (("daemon",), "Run the daemon: drive every modem, send the queue, store what comes "
                         "in."),
    "send": (("messages",), "Queue TEXT to each NUMBER (TEXT '-' reads standard input)."),
    "serve": (("http",), "Serve the HTTP API over the spool, without modems (`modempool run` "
                         "sends)."),
    "sim": (("simulate",), "A bank of simulated modems on pseudo-terminals (see "
                           "docs/simulator.md)."),
    "spool": (("spool",), "The spool's database: upgrade it, move it to PostgreSQL."),
    "status": (("messages",), "Every modem/SIM (state, number, signal, operator, sent vs quota, "
                              "why quarantined) and the queue depth; whether the daemon runs."),
    "systemd-unit": (("box",), "Print (or --install) a systemd unit for `modempool run`: "
                               "Type=notify with a watchdog, restart on failure, its own user in "
                               "group dialout, a hardened sandbox."),
    "udev": (("box",), "Print (or --install) udev rules: stable names by USB slot, group "
                       "dialout, ModemManager kept away."),
    "ussd": (("box",), "Run USSD CODE (such as *100#) on SIM through the running daemon; print "
                       "the answer."),
    "webhooks": (("http",), "Signed webhooks (Standard Webhooks) for SMS and message events."),
}


def register_all(group: click.Group) -> None:
    """Register every command of CATALOG on `group` at once (what `modempool` did at each start
    before it had CATALOG)."""
    loaded: set[str] = set()
    for modules, _line in CATALOG.values():
        load(group, modules, loaded)


def load(group: click.Group, modules: tuple[str, ...], loaded: set[str]) -> None:
    """Register on `group` the commands of `modules` not yet in `loaded` (each module's
    `register`, in order: `console` adds `passwd` to the `accounts` of `http`)."""
    for module in modules:
        if module not in loaded:
            importlib.import_module(f"modempool.commands.{module}").register(group)
            loaded.add(module)


#: What click (8.2 and later) raises for an unknown command, with its suggestions.
_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", ())


class Commands(OneLineErrors):
    """The `modempool` group: it lists its commands from CATALOG and imports a command's
    modules when that command is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(CATALOG) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in CATALOG and not self._loaded.issuperset(CATALOG[name][0]):
            if self._listing and name not in self.commands:   # `--help` needs its line only
                return click.Command(name, help=CATALOG[name][1])
            load(self, CATALOG[name][0], self._loaded)
        return self.commands.get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _NO_SUCH_COMMAND as exc:   # its "Did you mean" looks at the loaded ones only
            exc.possibilities = difflib.get_close_matches(exc.command_name,
                                                          self.list_commands(ctx)) or None
            raise

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False
