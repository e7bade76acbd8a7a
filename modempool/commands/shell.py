"""What every pool command shares: `--config`, `--db`, `--json`, opening the front door
(`modempool.Pool`), and time options checked as they are typed.

    @groups_group.command("list")
    @pool_command()
    def groups_list(pool, out):
        out.result(pool.groups(), lambda groups: out.table(groups, ["name", "members"]))

A refusal of the library (a PoolError) becomes one `Error: ...` line through the top-level
group (`modempool/commands/errors.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from modempool.commands.output import Output, config_option, json_option

db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
                         help="Spool database file (default: the one the config names).")


def open_pool(config_path: str | None, db_path: str | None = None, *, create: bool = True) -> Any:
    """The front door for a command; a spool database that cannot be reached is one clear
    line now, not at the first query."""
    from modempool import Pool

    pool = Pool.open(config_path, spool_path=db_path, create=create)
    if pool.config.spool_url:
        pool.spool   # noqa: B018  (connects)
    return pool


def pool_command(*, create: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make `body(pool, out, **options)` a command callback with --config, --db and --json:
    it gets the open `Pool` and the command's `Output` (in `[pool] timezone`). `create=False`
    for commands that only read (a missing spool reads as empty)."""
    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @config_option
        @db_option
        @json_option
        @functools.wraps(body)
        def callback(config_path: str | None, db_path: str | None, as_json: bool,
                     **options: Any) -> Any:
            with open_pool(config_path, db_path, create=create) as pool:
                return body(pool, Output(as_json, pool.config.tz), **options)
        return callback
    return decorate


class TimeText(click.ParamType):
    """A time as a person types it (`18:30`, `+10m`, `-2h`, `2026-12-01 09:00`): its form is
    checked when the command line is read (a bad one is a usage error naming the option), the
    text is passed on for the library to read in `[pool] timezone`."""

    name = "time"

    def __init__(self, *, past: bool = False) -> None:
        self.past = past

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from modempool.when import InvalidTime, parse_when

        try:
            parse_when(value, past=self.past)
        except InvalidTime as exc:
            self.fail(str(exc), param, ctx)
        return value


class Pairs(click.ParamType):
    """`KEY=VALUE` (repeatable options): a (key, value) pair, both stripped."""

    name = "key=value"

    def __init__(self, example: str) -> None:
        self.example = example

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        key, sep, item = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r}: use {self.example}", param, ctx)
        return key.strip(), item.strip()
