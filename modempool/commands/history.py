"""`modempool history ...`: search and export sent and received messages, and conversations,
through `modempool.Pool`."""

from __future__ import annotations

import click

from modempool.commands.shell import TimeText, pool_command
from modempool.operator.history import STATES


def _query_options(func):
    """The filters of a history query, as options."""
    for option in reversed([
        click.option("--number", default=None, help="Phone number."),
        click.option("--contact", default=None, help="Contact name (part of it) or group name."),
        click.option("--text", default=None, help="Text contains, e.g. 退订."),
        click.option("--since", type=TimeText(past=True), default=None,
                     help="From this time, e.g. 2026-11-01 or -2d ([pool] timezone)."),
        click.option("--until", type=TimeText(past=True), default=None, help="Before this time."),
        click.option("--state", type=click.Choice(STATES), default=None,
                     help="An outbound state, or received."),
        click.option("--campaign", type=int, default=None, help="Campaign id."),
        click.option("--direction", type=click.Choice(["in", "out", "both"]), default="both"),
        click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="At most this many (0: all)."),
    ]):
        func = option(func)
    return func


def _query(limit, **filters):
    from modempool.operator.history import Query

    return Query(limit=limit or None, **filters)


@click.group("history")
def history_group() -> None:
    """Search sent and received messages; export to CSV/XLSX.

    \b
    modempool history search --contact 张三 --since 2026-11-01
    modempool history search --text 退订 --direction in
    modempool history export 十一月.xlsx --since 2026-11-01 --until 2026-12-01
    """


@history_group.command("search")
@_query_options
@pool_command()
def history_search(pool, out, **filters) -> None:
    """Messages matching every filter, newest first, with contact names."""
    out.result(pool.history(_query(**filters)), lambda rows: out.table(
        rows, ["time", "direction", "number", "name", "state", "sim", "text"]))


@history_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@_query_options
@pool_command()
def history_export(pool, out, path, **filters) -> None:
    """Write what `history search` finds to CSV or XLSX (by extension)."""
    count = pool.export_history(_query(**filters), path)
    out.result({"path": path, "rows": count}, f"wrote {count} message(s) to {path}")


@history_group.command("threads")
@click.option("--unread", is_flag=True, help="Only conversations with unread replies.")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True)
@pool_command()
def history_threads(pool, out, unread, limit) -> None:
    """Conversations by contact (name, groups, unread count): modempool history threads --unread"""
    out.result(pool.threads(unread=unread, limit=limit), lambda rows: out.table(
        rows, ["last_time", "number", "name", "groups", "unread", "messages", "last_received"]))


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    group.add_command(history_group)
