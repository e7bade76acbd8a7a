"""`modempool optout ...` and `modempool optout blacklist ...`: opt-outs (退订) and the
blacklist (黑名单), through `modempool.Pool`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from modempool.commands.shell import pool_command
from modempool.errors import InvalidNumber, InvalidRow


@contextmanager
def _numbered_as_arguments() -> Iterator[None]:
    """The library places a batch's bad number by its row; here the batch is the command's
    arguments, so say "argument 2", not "row 2"."""
    try:
        yield
    except InvalidRow as exc:
        raise InvalidNumber(f"argument {exc.row}: {exc.problem}", code=exc.code,
                            params=exc.params) from None


@click.group("optout")
def optout_group() -> None:
    """Opt-outs (退订) and the blacklist (黑名单).

    \b
    Replies like TD, T, 退订, N, STOP (any case or width) opt the sender out automatically.
    modempool optout add 13800138000
    modempool optout list --json
    modempool optout blacklist import 黑名单.txt
    """


@optout_group.command("list")
@pool_command()
def optout_list(pool, out) -> None:
    """Numbers that opted out."""
    out.result(pool.optout_list(), lambda rows: out.table(
        rows, ["number", "keyword", "source", "created_at"]))


@optout_group.command("add")
@click.argument("numbers", nargs=-1, required=True)
@pool_command()
def optout_add(pool, out, numbers) -> None:
    """Opt numbers out by hand (all or none: a bad number opts none out)."""
    with _numbered_as_arguments():
        added = pool.add_optouts(numbers, source="manual")
    out.result({"added": added}, f"{added} number(s) opted out")


@optout_group.command("remove")
@click.argument("number")
@pool_command()
def optout_remove(pool, out, number) -> None:
    """Opt a number back in (only with the person's consent)."""
    pool.remove_optout(number)
    out.result({"removed": number}, f"{number} opted back in")


@optout_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@pool_command()
def optout_export(pool, out, path) -> None:
    """Write the opt-out list to CSV or XLSX."""
    count = pool.export_optouts(path)
    out.result({"path": path, "rows": count}, f"wrote {count} opt-out(s) to {path}")


@optout_group.group("blacklist")
def blacklist_group() -> None:
    """Numbers that never get any message."""


@blacklist_group.command("list")
@pool_command()
def blacklist_list(pool, out) -> None:
    """Every blacklisted number, with why."""
    out.result(pool.blacklist(), lambda rows: out.table(
        rows, ["number", "reason", "created_at"]))


@blacklist_group.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--reason", default="")
@pool_command()
def blacklist_add(pool, out, numbers, reason) -> None:
    """Blacklist numbers: they never get any message."""
    with _numbered_as_arguments():
        count = pool.add_to_blacklist(numbers, reason)
    out.result({"added": count}, f"{count} number(s) blacklisted")


@blacklist_group.command("remove")
@click.argument("number")
@pool_command()
def blacklist_remove(pool, out, number) -> None:
    """Take a number off the blacklist."""
    pool.remove_from_blacklist(number)
    out.result({"removed": number}, f"{number} removed from the blacklist")


@blacklist_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", default="imported")
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are rejected.")
@pool_command()
def blacklist_import(pool, out, path, reason, skip_bad) -> None:
    """Add every number of a CSV/XLSX/TXT file (all-or-nothing)."""
    from modempool.operator.importers import ImportRejected

    try:
        report = pool.import_blacklist(path, reason=reason, skip_rejected=skip_bad)
    except ImportRejected as exc:
        out.result(exc.report)
        raise click.ClickException(str(exc)) from None
    out.result(report, f"{report.imported} number(s) blacklisted")


@blacklist_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@pool_command()
def blacklist_export(pool, out, path) -> None:
    """Write the blacklist to CSV or XLSX."""
    count = pool.export_optouts(path, blacklist=True)
    out.result({"path": path, "rows": count}, f"wrote {count} number(s) to {path}")


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    group.add_command(optout_group)
