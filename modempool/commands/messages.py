"""`modempool init|send|queue|cancel|retry|inbox|status`: the messages, through `modempool.Pool`."""

from __future__ import annotations

import click

from modempool.commands.errors import Utf8File
from modempool.commands.output import Output, config_option, json_option
from modempool.commands.shell import TimeText, open_pool

# The spool commands (init, send, queue, cancel, retry, inbox, status); they work on the spool
# file alone, whether or not the daemon runs.


def _messages_table(pool, out, messages, title):
    rows = [(m.id, m.to, m.state.value, m.sim, m.attempts, m.priority,
             m.not_before if m.state.value == "queued" else m.updated_at,
             (m.text if len(m.text) <= 40 else m.text[:39] + "…").replace("\n", " "),
             m.error or pool.why_waiting(m))
            for m in messages]
    out.rows(title, ["id", "to", "state", "sim", "tries", "prio", "when", "text", "error"], rows)


@click.command("init")
@config_option
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init_command(config_path, force) -> None:
    """Write a commented example config (to --config, default ./modempool.toml)."""
    from importlib.resources import files
    from pathlib import Path

    from modempool.private_files import write_private

    target = Path(config_path or "modempool.toml")
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    write_private(target, files("modempool").joinpath("init_template.toml").read_text("utf-8"))
    click.echo(f"wrote {target}: edit the [[modem]] ports, then run `modempool run --config {target}`"
               " (or `modempool run --simulate 4` to try it without hardware)")


@click.command("send")
@click.argument("args", nargs=-1, required=True, metavar="NUMBER... TEXT")
@config_option
@click.option("--file", "text_file", type=Utf8File(), default=None,
              help="Read the text from this file (then every argument is a number).")
@click.option("--wait", is_flag=True, help="Wait until each message is sent or fails; "
              "exit 1 if any failed, expired, was cancelled or is ambiguous.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many "
              "seconds (exit 3).")
@click.option("--at", "at", type=TimeText(), default=None,
              help="Send not before: HH:MM, +10m, or YYYY-MM-DD HH:MM ([pool] timezone).")
@click.option("--expires", type=TimeText(), default=None,
              help="Give up if not sent by then (same forms as --at).")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher goes first.")
@click.option("--client-id", default=None, help="Idempotency key: the same id twice sends once.")
@click.option("--sim", "sims", multiple=True, help="Only send through this SIM (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the queued messages as JSON.")
@click.option("--to-opted-out", "to_opted_out", is_flag=True,
              help="Send even to numbers that opted out (with [optout] block_direct set); "
              "blacklisted numbers never get anything.")
def send_command(args, config_path, text_file, wait, timeout, at, expires, priority, client_id,
                 sims, as_json, to_opted_out) -> None:
    """Queue TEXT to each NUMBER (TEXT '-' reads standard input). The daemon sends it."""
    from modempool.errors import OptedOut, PoolError, RefusedMany, SpoolFailure
    from modempool.spool.engine import SpoolTooNew, SpoolUnreachable

    numbers, text = _numbers_and_text(args, text_file)
    pool = open_pool(config_path)
    out = Output(as_json, pool.config.tz)
    try:
        messages = pool.send(numbers, text, client_id=client_id, at=at, expires=expires,
                             priority=priority, sims=sims, to_opted_out=to_opted_out)
    except (SpoolFailure, SpoolTooNew, SpoolUnreachable):
        raise   # the spool's own words, as on either engine before anything is asked
    except PoolError as exc:
        refusals = exc.refusals if isinstance(exc, RefusedMany) else [exc]
        hint = " (--to-opted-out sends to opted-out numbers anyway)" if any(
            isinstance(r, OptedOut) for r in refusals) else ""
        raise click.ClickException(f"{exc}; nothing was queued{hint}") from None
    if not as_json:
        for m in messages:
            when = f", not before {out.time(m.not_before)}" if m.not_before else ""
            click.echo(f"#{m.id} to {m.to}: {m.state.value}{when}")
    if wait:
        _wait_for(pool, out, messages, timeout)
    elif as_json:
        out.json(messages)


def _numbers_and_text(args, text_file):
    """The NUMBER... TEXT arguments (TEXT '-' is standard input; with --file every argument is
    a number); a text read from a file or stdin loses its final newline."""
    import sys

    if text_file is not None:
        text = text_file.read()
        return list(args), text[:-1] if text.endswith("\n") else text
    if len(args) < 2:
        raise click.UsageError("give at least one NUMBER and the TEXT (or --file)")
    if args[-1] != "-":
        return list(args[:-1]), args[-1]
    text = sys.stdin.read()
    return list(args[:-1]), text[:-1] if text.endswith("\n") else text


def _wait_for(pool, out, messages, timeout):
    """`send --wait`: each message's final state; exit 1 if any did not go out, 3 on timeout."""
    from modempool.spool import SUCCESS_STATES

    result = pool.wait([m.id for m in messages], timeout=timeout)
    if out.as_json:
        out.json(result.messages)
    if result.timed_out:
        click.echo("Error: timed out waiting; still " + ", ".join(
            f"#{m.id} {m.state.value}" for m in result.pending), err=True)
        raise SystemExit(3)
    if not out.as_json:
        for m in result.messages:
            click.echo(f"#{m.id} to {m.to}: {m.state.value}" + (f" via {m.sim}" if m.sim else "")
                       + (f" ({m.error})" if m.error and m.state not in SUCCESS_STATES else ""))
    if not result.all_succeeded:
        raise SystemExit(1)


@click.command("queue")
@config_option
@click.option("--state", type=click.Choice(["queued", "sending", "sent", "delivered", "failed",
                                            "expired", "cancelled", "ambiguous"]), default=None)
@click.option("--campaign", "campaign_id", type=int, default=None, help="Only this campaign.")
@click.option("--limit", type=int, default=None, help="Only the last N messages.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a list of {id, to, text, state, sim, attempts, ...}.")
def queue_command(config_path, state, campaign_id, limit, as_json) -> None:
    """List messages in the spool, oldest first."""
    pool = open_pool(config_path, create=False)
    out = Output(as_json, pool.config.tz)
    if limit is None and not as_json:
        limit = 100  # a table of a million rows helps nobody; --json gives them all
    messages = pool.messages(state=state, campaign=campaign_id, limit=limit)
    if as_json:
        out.json(messages)
        return
    counts = ", ".join(f"{n} {s}" for s, n in pool.counts().items() if n)
    shown = f"last {len(messages)}" if len(messages) == limit else f"{len(messages)}"
    _messages_table(pool, out, messages, f"{shown} message(s) — spool: {counts or 'empty'}")


def _decide(config_path, ids, action):
    from modempool.errors import PoolError

    pool = open_pool(config_path, create=False)
    failed = False
    for message_id in ids:
        try:
            was = pool.get(message_id).state.value
            message = getattr(pool, action)(message_id)
            if was == "ambiguous":
                click.echo(f"note: #{message_id} may already have been delivered once; "
                           "it will be sent again", err=True)
        except PoolError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
            continue
        click.echo(f"#{message.id} to {message.to}: {message.state.value}")
    if failed:
        raise SystemExit(1)


@click.command("cancel")
@click.argument("ids", nargs=-1, required=True, type=int, metavar="ID...")
@config_option
def cancel_command(ids, config_path) -> None:
    """Cancel queued message(s)."""
    _decide(config_path, ids, "cancel")


@click.command("retry")
@click.argument("ids", nargs=-1, required=True, type=int, metavar="ID...")
@config_option
def retry_command(ids, config_path) -> None:
    """Queue failed, expired or ambiguous message(s) again (for ambiguous: may send twice)."""
    _decide(config_path, ids, "retry")


@click.command("inbox")
@config_option
@click.option("--since", type=TimeText(past=True), default=None,
              help="Only since: HH:MM, YYYY-MM-DD [HH:MM], or -2h/-1d ([pool] timezone).")
@click.option("--from", "sender", default=None, help="Only from this number.")
@click.option("--limit", type=int, default=None, help="Only the last N messages.")
@click.option("--json", "as_json", is_flag=True, help="Print a list of received messages.")
def inbox_command(config_path, since, sender, limit, as_json) -> None:
    """List received messages, oldest first."""
    pool = open_pool(config_path, create=False)
    out = Output(as_json, pool.config.tz)
    if limit is None and not as_json:
        limit = 100
    received = pool.inbox(since=since, sender=sender, limit=limit)
    if as_json:
        out.json(received)
        return
    out.rows(f"{len(received)} received message(s)",
             ["id", "received", "from", "name", "groups", "sim", "text"],
             [(m.id, m.received_at, m.sender, r.name, ", ".join(r.groups), m.sim,
               m.text + ("" if m.complete else "  [incomplete]"))
              for r in received for m in [r.message]])


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print SIMs and queue as JSON.")
def status_command(config_path, as_json) -> None:
    """Every modem/SIM (state, number, signal, operator, sent vs quota, why quarantined) and the
    queue depth; whether the daemon runs."""
    from modempool.dispatch.liveness import sim_note

    pool = open_pool(config_path, create=False)
    out = Output(as_json, pool.config.tz)
    status = pool.status()
    if as_json:
        out.json(status)
        return
    sims, counts = [s.to_dict() for s in status.sims], status.queue
    campaigns = [c.to_dict() for c in status.campaigns]

    def of(value, limit):
        return f"{value}/{limit}" if limit else str(value)

    if len(status.daemons) > 1:   # several hosts on one queue: each of them
        click.echo(f"{len(status.daemons)} daemons running:")
        for daemon in status.daemons:
            click.echo("  " + daemon.describe(pool.config.tz))
    else:
        click.echo(status.daemon.describe(pool.config.tz))
    out.rows(f"{len(sims)} SIM(s) — spool {status.spool}",
             ["sim", "state", "number", "signal", "operator", "balance", "today", "month",
              "errors", "port", "note"],
             [(s["name"], s.get("state"), s.get("msisdn"), s.get("signal"), s.get("operator"),
               s.get("balance"), of(s["sent_today"], s["per_day"]),
               of(s["sent_month"], s["per_month"]), s.get("errors"), s.get("port"),
               sim_note(s, pool.config.tz))
              for s in sims])
    click.echo("queue: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n or
                                     state == "queued"))
    for line in status.describe_hooks():
        click.echo(line)
    leftovers = pool.forward_leftovers()
    if leftovers:
        click.echo(f"forward command cut short with no mark for {len(leftovers)} received SMS "
                   "(before the upgrade to schema 15, or a retry killed): run by nothing; see "
                   "`modempool forward leftovers` (--retry, --give-up)")
    if campaigns:
        out.rows(f"{len(campaigns)} campaign(s) running or paused",
                 ["id", "name", "state", "done", "sent", "delivered", "failed", "pending",
                  "per min", "eta"],
                 [(c["campaign"], c["name"], c["state"], f"{c['done']}/{c['total']}", c["sent"],
                   c["delivered"], c["failed"], c["pending"], c["rate_per_minute"],
                   f"{c['eta_seconds']} s" if c["eta_seconds"] is not None else "")
                  for c in campaigns])


COMMANDS = [init_command, send_command, queue_command, cancel_command, retry_command, inbox_command, status_command]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
