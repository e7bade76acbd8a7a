"""`modempool autoreply ...`: auto-reply (自动回复) rules and what they answered, through
`modempool.Pool`."""

from __future__ import annotations

import click

from modempool.commands.shell import pool_command


@click.group("autoreply")
def autoreply_group() -> None:
    """Auto-reply (自动回复) rules; config [[autoreply]] rules apply too.

    \b
    modempool autoreply add --keyword 营业时间 --reply "营业时间：每天 9:00-18:00"
    modempool autoreply add --pattern "^(价格|报价)" --reply "请致电 400-000-0000" --hours 09:00-18:00
    """


@autoreply_group.command("add")
@click.option("--reply", required=True, help="Reply text.")
@click.option("--keyword", "keywords", multiple=True, help="Text containing it matches (repeatable).")
@click.option("--pattern", default=None, help="Regular expression instead of keywords.")
@click.option("--sim", default=None, help="Only for messages received on this SIM.")
@click.option("--hours", default=None, help="Only in this local window, e.g. 09:00-18:00.")
@click.option("--cooldown", type=int, default=3600, show_default=True,
              help="Seconds before the same sender is answered again.")
@pool_command()
def autoreply_add(pool, out, reply, keywords, pattern, sim, hours, cooldown) -> None:
    """Add a rule (tried after the config's)."""
    rule = pool.add_autoreply(reply, keywords=keywords, pattern=pattern, sim=sim, hours=hours,
                              cooldown=cooldown)
    out.result(rule, f"rule {rule.name} added")


@autoreply_group.command("list")
@pool_command()
def autoreply_list(pool, out) -> None:
    """Rules in the order they are tried (config first)."""
    out.result(pool.autoreply_rules(), lambda rows: out.table(
        rows, ["rule", "keywords", "pattern", "reply", "sim", "hours", "cooldown"]))


@autoreply_group.command("remove")
@click.argument("rule_id", type=int)
@pool_command()
def autoreply_remove(pool, out, rule_id) -> None:
    """Delete a stored rule (db:N); config rules are edited in the config."""
    pool.remove_autoreply(rule_id)
    out.result({"removed": rule_id}, f"rule db:{rule_id} removed")


@autoreply_group.command("log")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True)
@pool_command()
def autoreply_log(pool, out, limit) -> None:
    """What was answered, and what the cooldown held back."""
    out.result(pool.autoreply_log(limit), lambda rows: out.table(
        rows, ["created_at", "sender", "rule", "outcome", "message_id"]))


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    group.add_command(autoreply_group)
