"""`modempool serve`, `modempool accounts ...`, `modempool webhooks ...`: the HTTP API's
commands. Each parses its options, makes one library call and prints the result."""

from __future__ import annotations

import click

from modempool.commands.output import Output, config_option, json_option
from modempool.commands.shell import open_pool



def _config(config_path):
    from modempool.config import load_config
    from modempool.errors import PoolError

    try:
        return load_config(config_path)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None


def _library(call, *args, **kwargs):
    """A library call whose refusal becomes one clear line (exit 1), never a traceback."""
    from modempool.errors import PoolError

    try:
        return call(*args, **kwargs)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


# ---- serve -------------------------------------------------------------------------------

@click.command("serve")
@config_option
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to listen on (default [http] listen, else 127.0.0.1:8080).")
@click.option("--public", is_flag=True, help="Allow a non-loopback address (see docs/http.md).")
@click.option("--no-webhooks", is_flag=True, help="Do not deliver webhooks from this process.")
def serve_command(config_path, listen, public, no_webhooks) -> None:
    """Serve the HTTP API over the spool, without modems (`modempool run` sends)."""
    import dataclasses
    import logging

    from modempool.web.server import default_listen, exposure_warning, run_event_loop, serve_api

    config = _config(config_path)
    if public:
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, public=True))
    address = default_listen(config, listen)
    warning = _library(exposure_warning, config, address)
    if warning:
        click.echo(warning, err=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def listening() -> None:   # said once it listens: a spool refused at start never is
        click.echo(f"modempool API on http://{address} (docs at /docs); Ctrl-C stops it",
                   err=True)

    _library(run_event_loop, serve_api(config, address, webhooks=not no_webhooks,
                                        freeze_heap=True, ready=listening))


# ---- accounts ----------------------------------------------------------------------------

@click.group("accounts")
def accounts_group() -> None:
    """API accounts and their keys (docs/http.md)."""


def _accounts(config_path, as_json=False):
    """The accounts of the pool `config_path` describes, and how to print."""
    from modempool.accounts import Accounts

    pool = open_pool(config_path)
    return _library(Accounts, pool.spool, config=pool.config), Output(as_json, pool.config.tz)


@accounts_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "sender", "viewer"]), required=True,
              help="admin: everything; sender: sends, sees its own; viewer: sees its own.")
@click.option("--sims", default=None, metavar="M1,M2", help="Only through these SIMs.")
@click.option("--per-day", type=click.IntRange(1), default=None, help="At most N messages a day.")
@click.option("--per-minute", type=click.IntRange(1), default=None, help="At most N a minute.")
@config_option
@json_option
def accounts_add(name, role, sims, per_day, per_minute, config_path, as_json) -> None:
    """Make an account; its key is printed once (only a digest of it is stored)."""
    accounts, out = _accounts(config_path, as_json)
    account, key = _library(accounts.add, name, role, sims=_csv(sims) or None,
                            per_day=per_day, per_minute=per_minute)
    if as_json:
        out.json({"name": account.name, "key": key})
        return
    click.echo(f"account {account.name} ({account.role.value}) made. Its key, shown this once:")
    click.echo(key)


@accounts_group.command("list")
@config_option
@json_option
def accounts_list(config_path, as_json) -> None:
    """Every account (never its key)."""
    accounts, out = _accounts(config_path, as_json)
    rows = [a.to_dict() for a in accounts.list()]
    if as_json:
        out.json(rows)
        return
    if not rows:
        click.echo("no accounts (add one with `modempool accounts add NAME --role sender`)")
    for row in rows:
        limits = ", ".join(f"{k.replace('_', '-')} {row[k]}" for k in ("per_minute", "per_day") if row[k])
        click.echo(f"{row['name']:<20} {row['role']:<7} sims {','.join(row['sims'] or ['any'])}"
                   + (f"  {limits}" if limits else ""))


@accounts_group.command("remove")
@click.argument("name")
@config_option
def accounts_remove(name, config_path) -> None:
    """Delete an account: its key stops working at once (its messages stay)."""
    _library(_accounts(config_path)[0].remove, name)
    click.echo(f"account {name} removed")


@accounts_group.command("rotate")
@click.argument("name")
@config_option
@json_option
def accounts_rotate(name, config_path, as_json) -> None:
    """A new key for NAME; the old one stops working at once."""
    accounts, out = _accounts(config_path, as_json)
    key = _library(accounts.rotate, name)
    if as_json:
        out.json({"name": name, "key": key})
        return
    click.echo(f"new key for {name}, shown this once:")
    click.echo(key)


# ---- webhooks ----------------------------------------------------------------------------

@click.group("webhooks")
def webhooks_group() -> None:
    """Signed webhooks (Standard Webhooks) for SMS and message events."""


def _webhooks(config_path, as_json=False):
    """The webhooks of the pool `config_path` describes, and how to print."""
    from modempool.webhooks import Webhooks

    pool = open_pool(config_path)
    return _library(Webhooks, pool.spool), Output(as_json, pool.config.tz)


@webhooks_group.command("add")
@click.argument("url")
@click.option("--events", required=True, metavar="E1,E2",
              help="sms.received, message.sent, message.delivered, message.failed, "
                   "message.ambiguous, optout.added")
@click.option("--account", default=None, help="Only this account's messages.")
@config_option
@json_option
def webhooks_add(url, events, account, config_path, as_json) -> None:
    """Subscribe URL to events; prints its id and its signing secret (whsec_...)."""
    webhooks, out = _webhooks(config_path, as_json)
    webhook, secret = _library(webhooks.add, url, _csv(events), account=account)
    if as_json:
        out.json({"id": webhook.id, "secret": secret})
        return
    click.echo(f"webhook {webhook.id} → {webhook.url} for {', '.join(webhook.events)}")
    click.echo(f"signing secret: {secret}")


@webhooks_group.command("list")
@config_option
@json_option
def webhooks_list(config_path, as_json) -> None:
    """Every subscription (without secrets)."""
    webhooks, out = _webhooks(config_path, as_json)
    rows = [w.to_dict() for w in webhooks.list()]
    if as_json:
        out.json(rows)
        return
    if not rows:
        click.echo("no webhooks")
    for row in rows:
        click.echo(f"{row['id']}  {row['url']}  {','.join(row['events'])}"
                   + (f"  account {row['account']}" if row["account"] else ""))


@webhooks_group.command("remove")
@click.argument("webhook_id")
@config_option
def webhooks_remove(webhook_id, config_path) -> None:
    """Unsubscribe; its undelivered events are dropped."""
    _library(_webhooks(config_path)[0].remove, webhook_id)
    click.echo(f"webhook {webhook_id} removed")


@webhooks_group.command("log")
@click.option("--id", "webhook_id", default=None, help="Only this webhook's deliveries.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@config_option
@json_option
def webhooks_log(webhook_id, limit, config_path, as_json) -> None:
    """The latest deliveries, newest first: state, attempts, last answer."""
    from modempool.webhooks import Webhooks

    pool = open_pool(config_path)
    webhooks, out = _library(Webhooks, pool.spool), Output(as_json, pool.config.tz)
    rows = webhooks.log(webhook_id, limit)
    if as_json:
        out.json(rows)
        return
    for row in rows:
        click.echo(f"{out.time(row['created_at'])}  {row['event_id']}  {row['type']:<18} {row['state']:<9} "
                   f"{row['attempts']} attempt(s)"
                   + (f"  last: {row['last_error'] or row['last_status']}"
                      if row["state"] != "delivered" and row["attempts"] else ""))
    click.echo(f"Delivered and given-up deliveries are kept {pool.config.webhooks.keep_days} days "
               "([webhooks] keep_days); pending ones until they are delivered or given up.")


def register(main: click.Group) -> None:
    """Add these commands to the `modempool` group."""
    for command in (serve_command, accounts_group, webhooks_group):
        main.add_command(command)
