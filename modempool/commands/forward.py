"""`modempool forward ...`: the numbers each received SMS is forwarded to, through
`modempool.Pool` (`pool.forwarding`). The config's `[forward] to` numbers are listed too;
they, the format and the command are changed in the config file. `leftovers`: the SMS whose
forward command was cut short with no mark (`Pool.forward_leftovers`), run again or given
up."""

from __future__ import annotations

import click

from modempool.commands.shell import pool_command


@click.group("forward")
def forward_group() -> None:
    """Forwarding (转发) received SMS to numbers, while the daemon runs.

    \b
    modempool forward add 13900139000
    modempool forward list
    modempool forward remove 13900139000
    modempool forward leftovers
    """


@forward_group.command("list")
@pool_command(create=False)
def forward_list(pool, out) -> None:
    """Every number forwarded to: the config's, then those added here."""
    out.result(pool.forward_targets(), lambda rows: out.table(rows, ["number", "from"]))


@forward_group.command("add")
@click.argument("number")
@pool_command()
def forward_add(pool, out, number) -> None:
    """Forward each received SMS to NUMBER too (no restart needed)."""
    e164 = pool.add_forward_target(number)
    out.result({"added": e164}, f"received SMS are forwarded to {e164} too")


@forward_group.command("remove")
@click.argument("number")
@pool_command()
def forward_remove(pool, out, number) -> None:
    """Stop forwarding to NUMBER (one added here; the config's are in the config file)."""
    e164 = pool.remove_forward_target(number)
    out.result({"removed": e164}, f"no longer forwarded to {e164}")


@forward_group.command("leftovers")
@click.argument("ids", nargs=-1, type=int)
@click.option("--retry", is_flag=True,
              help="Run the config's forward command again, once, for IDS (or --all).")
@click.option("--give-up", is_flag=True,
              help="Record IDS (or --all) as given up (dealt with by hand): listed no more.")
@click.option("--all", "every", is_flag=True, help="With --retry or --give-up: every one listed.")
@pool_command(create=False)
def forward_leftovers(pool, out, ids, retry, give_up, every) -> None:
    """Received SMS whose forward command was cut short with no mark (before the upgrade to
    schema 15, or an operator's retry killed), which no daemon runs again; IDS: only these.

    \b
    modempool forward leftovers
    modempool forward leftovers --retry 12 15
    modempool forward leftovers --give-up 12 15
    modempool forward leftovers --give-up --all
    """
    if retry and give_up:
        raise click.UsageError("--retry or --give-up, not both")
    if every and not (give_up or retry):
        raise click.UsageError("--all goes with --retry or --give-up")
    if retry:
        from modempool.operator.forward_retry import said as retried

        ran = pool.retry_forward_leftovers(ids, every=every)
        out.result(ran.to_dict(), retried(ran))
        if ran.failed:
            raise SystemExit(1)
        return
    if give_up:
        from modempool.operator.forward_leftovers import said

        done = pool.give_up_forward_leftovers(ids, every=every)
        out.result(done.to_dict(), said(done))
        return
    rows = [row for row in pool.forward_leftovers() if not ids or row.id in ids]
    out.result(rows, lambda found: out.table(
        found, ["id", "received_at", "sender", "sim", "attempts", "failed_at", "text"])
        if found else click.echo("no forward command cut short"))


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    group.add_command(forward_group)
