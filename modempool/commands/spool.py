"""`modempool spool ...`: the spool itself (`upgrade`, `migrate --to postgresql://...`)."""

from __future__ import annotations

import click

from modempool.commands.output import config_option, echo_json, json_option


@click.group("spool")
def spool_group() -> None:
    """The spool's database: upgrade it, move it to PostgreSQL."""


@spool_group.command("migrate")
@config_option
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="The SQLite spool to copy (default: the config's [spool] path).")
@click.option("--to", "target", required=True, metavar="URL",
              help="postgresql://user@host/db to copy into (created or upgraded as needed).")
@json_option
def migrate_command(config_path, db_path, target, as_json) -> None:
    """Copy an SQLite spool (messages, parts, inbound, reports, SIMs, events and the operator
    tables the target has) into PostgreSQL and verify that every row is there as in the source.
    A second run copies nothing."""
    from modempool.errors import PoolError
    from modempool.spool.migrate import migrate

    try:
        if db_path is None:
            from modempool.config import load_config

            db_path = load_config(config_path).spool_path
        result = migrate(db_path, target)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(result)
    else:
        click.echo(f"{result.source} -> {result.target}")
        for table in result.tables:
            mark = "ok" if table.agrees else f"{table.conflicts} CONFLICTS"
            click.echo(f"  {table.table:<18} {table.source:>9} rows, {table.copied:>9} copied now,"
                       f" {table.target:>9} in the target  {mark}")
            if table.keys:
                more = ", ..." if table.conflicts > len(table.keys) else ""
                click.echo(f"    the target holds otherwise: {', '.join(table.keys)}{more}")
        if result.skipped:
            click.echo(f"  not copied (no such table in the target): {', '.join(result.skipped)}")
    if not result.agrees:
        found = sum(t.conflicts for t in result.tables)
        raise click.ClickException(
            f"{found} rows of the source are not in the target as they are in the source (their "
            "key is taken by another row, or the row changed there); they were not copied: see "
            "docs/scale-out.md, 'When a rerun finds conflicts'")


@spool_group.command("upgrade")
@config_option
@click.option("--despite-older-daemons", is_flag=True,
              help="Upgrade even while daemons of an older modempool still run on this spool: "
              "past a step that drops what they write, they can store no SMS they receive "
              "until they are stopped (those are lost, apart from a log line).")
@json_option
def upgrade_command(config_path, despite_older_daemons, as_json) -> None:
    """Bring the config's spool to this modempool's schema version now (any command and the
    daemon do it when they open it). An upgrade that would break daemons of an older
    modempool still running is refused, naming them: stop them first."""
    from modempool.config import load_config
    from modempool.errors import PoolError
    from modempool.spool.schema import SCHEMA_VERSION

    try:
        config = load_config(config_path)
        with config.open_spool(despite_older_daemons=despite_older_daemons) as spool:
            where = spool.engine.where
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json({"spool": where, "schema_version": SCHEMA_VERSION})
    else:
        click.echo(f"the spool {where} is at schema version {SCHEMA_VERSION}")


def register(main: click.Group) -> None:
    main.add_command(spool_group)
