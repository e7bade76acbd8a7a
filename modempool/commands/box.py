"""Commands for running modempool on a real box: `ussd` through the daemon, `discover`, `udev`,
`doctor`, `systemd-unit`. Each one translates arguments and prints; the library decides."""

from __future__ import annotations

import json
from typing import Any

import click

CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default ./modempool.toml, then ~/.config/modempool/).")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.command("ussd")
@click.argument("sim")
@click.argument("code")
@CONFIG_OPTION
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the network's answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ussd_command(sim: str, code: str, config_path: str | None, timeout: float,
                 as_json: bool) -> None:
    """Run USSD CODE (such as *100#) on SIM through the running daemon; print the answer.

    The daemon owns the modems while it runs, so the query goes through it: no need to stop it.
    """
    from modempool import Pool
    from modempool.errors import PoolError

    try:
        with Pool.open(config_path) as pool:
            answer = pool.ussd(sim, code, timeout=timeout)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        _echo_json(answer.to_dict())
    else:
        click.echo(answer.text)


COMMANDS = [ussd_command]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
