"""The `modempool` command: the entry point. It builds the click group and registers the
commands, one module per subject in `modempool/commands/`; each parses its options, calls the
library (`modempool.Pool`) and prints the result."""

from __future__ import annotations

import click

from modempool.commands import (autoreply, campaigns, codec, contacts, daemon, forward, history,
                                jobs, messages, optout, probe, simulate)
from modempool.commands.errors import OneLineErrors


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modempool")
def main() -> None:
    """modempool: drive a bank of GSM modems (短信猫) to send and receive SMS."""


for _module in (codec, simulate, probe, messages, daemon, contacts, campaigns, optout, autoreply,
                forward, history, jobs):
    _module.register(main)

from modempool.commands.http import register as _register_http  # noqa: E402

_register_http(main)
from modempool.commands.box import register as _register_box  # noqa: E402

_register_box(main)
from modempool.commands.console import register as _register_console  # noqa: E402

_register_console(main)


from modempool.commands.spool import register as _register_spool  # noqa: E402

_register_spool(main)

if __name__ == "__main__":
    main()
