"""How the commands print: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                width: int = 160) -> None:
    """A table with a title; cells wrap rather than being cut; None prints as nothing."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(width=None if sys.stdout.isatty() else width).print(table)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


#: `--config` and `--json`, the same in every command.
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default ./modempool.toml, then ~/.config/modempool/).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def local_time(moment: Any, tz: Any = None) -> str:
    """A time for people: local time of `[pool] timezone` (`tz`), `2026-12-01 09:00:00`."""
    from modempool.when import local_text

    return local_text(moment, tz)
