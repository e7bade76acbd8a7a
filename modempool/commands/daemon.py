"""`modempool run|demo`: the daemon side."""

from __future__ import annotations

import click

from modempool.commands.output import config_option


@click.command("run")
@config_option
@click.option("--simulate", type=click.IntRange(1, 512), default=None,
              help="Start a simulated bank of N modems in-process instead of real ones.")
@click.option("-v", "--verbose", count=True, help="More log (-vv: AT traffic).")
@click.option("--http", "http_listen", default=None, metavar="HOST:PORT",
              help="Serve the HTTP API too (as [http] listen; see docs/http.md).")
def run_command(config_path: str | None, simulate: int | None, verbose: int,
                http_listen: str | None) -> None:
    """Run the daemon: drive every modem, send the queue, store what comes in."""
    import asyncio

    from modempool.config import load_config
    from modempool.dispatch.daemon import Daemon
    from modempool.errors import PoolError
    from modempool.http_listen import with_listen
    from modempool.logs import setup_logging

    try:
        config = with_listen(load_config(config_path), http_listen)
        setup_logging(config, verbose=verbose)
        asyncio.run(Daemon(config, simulate=simulate).run())
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@click.command("demo")
@click.option("--modems", type=click.IntRange(1, 16), default=4, help="Simulated modems.")
@click.option("--plain", is_flag=True, help="No live display (for logs and CI).")
@click.option("--spool", "spool_path", type=click.Path(dir_okay=False), default=None,
              help="Keep the demo's spool in this file (default: a temporary one, removed).")
def demo_command(modems: int, plain: bool, spool_path: str | None) -> None:
    """Send a handful of messages and a small campaign through a simulated bank; show where they
    went, the replies (with the contacts' names) and an opt-out (退订)."""
    import asyncio

    from modempool.demo import run_demo

    raise SystemExit(asyncio.run(run_demo(modems=modems, live=not plain, spool_path=spool_path)))


COMMANDS = [run_command, demo_command]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
