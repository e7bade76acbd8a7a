"""How the commands print: rich tables for people, JSON for programs, and every time in
`[pool] timezone`: local `2026-12-01 09:00:00` in tables and lines, ISO 8601 with that zone's
offset (`2026-12-01T09:00:00.000+08:00`) in JSON. This module is the one place that formats a
time for the CLI; the library hands out datetimes or the spool's UTC text.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

import click

from modempool.when import as_moment, local_time

#: `--config` and `--json`, the same in every command.
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default ./modempool.toml, then ~/.config/modempool/).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def is_time_key(key: str) -> bool:
    """Whether a field of a result holds a moment (`created_at`, `time`, `lease_until`, ...)."""
    return key == "time" or key.endswith(("_at", "_until", "_time")) or key in (
        "not_before", "last_run", "since", "until")


def json_time(moment: datetime, tz: tzinfo | None = None) -> str:
    """A time for programs: ISO 8601 in `tz` with its offset and milliseconds."""
    return moment.astimezone(tz).isoformat(timespec="milliseconds")


def plain(data: Any) -> Any:
    """A result as plain data: `to_dict()`, `as_dict()`, a dataclass, or lists/dicts of them."""
    for method in ("to_dict", "as_dict"):
        if callable(getattr(data, method, None)):
            return getattr(data, method)()
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {f.name: plain(getattr(data, f.name)) for f in dataclasses.fields(data)}
    if isinstance(data, Mapping):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain(item) for item in data]
    return data


def json_ready(data: Any, tz: tzinfo | None = None) -> Any:
    """`plain(data)` with every moment (a datetime, or the spool's UTC text under a time key)
    as `json_time` in `tz`."""
    data = plain(data)
    if isinstance(data, datetime):
        return json_time(as_moment(data), tz)
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            moment = as_moment(value) if isinstance(key, str) and is_time_key(key) else None
            out[key] = json_time(moment, tz) if moment else json_ready(value, tz)
        return out
    if isinstance(data, list):
        return [json_ready(item, tz) for item in data]
    return data


def json_text(data: Any) -> str:
    """Plain data as the CLI's one JSON style: indented 2, UTF-8 kept (no `\\u` escapes)."""
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def echo_json(data: Any, tz: tzinfo | None = None) -> None:
    """Print `data` as the CLI's one JSON style, times in `tz`."""
    click.echo(json_text(json_ready(data, tz)))


def echo_json_as_given(data: Any) -> None:
    """Print `data` as the CLI's one JSON style with its times as they are: a PDU's time
    stamps keep the offset the service centre wrote, they are not moved to a local zone."""
    click.echo(json_text(plain(data)))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                width: int = 160, tz: tzinfo | None = None) -> None:
    """A table with a title; cells wrap rather than being cut; None prints as nothing; a
    datetime as local time in `tz`."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(cell, tz) for cell in row))
    Console(width=None if sys.stdout.isatty() else width).print(table)


def _cell(value: Any, tz: tzinfo | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_time(value, tz)
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


class Output:
    """How one command prints, once it knows `--json` and the pool's time zone."""

    def __init__(self, as_json: bool, tz: tzinfo | None = None) -> None:
        self.as_json = as_json
        self.tz = tz

    def time(self, moment: Any) -> str:
        """A moment as people read it here (local time of `[pool] timezone`)."""
        return local_time(moment, self.tz)

    def json(self, data: Any) -> None:
        echo_json(data, self.tz)

    def table(self, rows: Iterable[Any], columns: Sequence[str], title: str = "", *,
              width: int = 160) -> None:
        """Results (dicts, or objects with `to_dict()`) as a table of `columns`; a time column
        in local time, lists joined by commas, a dict as `key=value` pairs."""
        shown = []
        for row in rows:
            data = plain(row)
            shown.append([self.time(data.get(c)) if is_time_key(c) else data.get(c)
                          for c in columns])
        print_table(title, columns, shown, width=width, tz=self.tz)

    def rows(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
             width: int = 160) -> None:
        """A table of ready rows (datetimes in them shown in local time)."""
        print_table(title, columns, rows, width=width, tz=self.tz)

    def result(self, data: Any, human: Any = None) -> None:
        """`data` as JSON with --json; else `human`: a line, or a function of `data`."""
        if self.as_json:
            self.json(data)
        elif callable(human):
            human(data)
        elif human is not None:
            click.echo(human)
