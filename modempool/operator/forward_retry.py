"""`modempool forward leftovers --retry`: the forward commands cut short with no mark
(`forward_leftovers.py`) run again by the operator, once each.

What runs is what the daemon would run for the SMS today, as gammu-smsd's RunOnReceive or
smstools' eventhandler would run it: the config's `[forward] command` now (a leftover's own
line is not kept, only its digest), with the SMS's JSON on stdin and its `SMS_*` /
`MODEMPOOL_*` variables, today's clean environment (`pass_env`), `timeout`, and the masked
stderr tail (`forward_command.run_command`, the daemon's one run). One attempt, no retries:
its outcome is recorded in `forward_log` under today's command, counted on from the
leftover's attempts. Exit status 0: the SMS is no leftover any more. A failure: it is listed
again, with the failure's detail. Each is claimed before it runs (`claim`, judged by
`forward_leftovers.claim_alive`): a retry of another process or box, or a daemon that took
the SMS meanwhile, leaves it alone; a retry killed while the command ran is listed again once
its process is judged gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modempool.config import ForwardConfig
from modempool.errors import NotFound, PoolError
from modempool.operator.db import ensure_schema, locked, now_iso
from modempool.operator.forward_command import run_command
from modempool.operator.forward_leftovers import (LOCK, asked, cut_short, database_now,
                                                  leftovers, no_leftover, retry_claim)
from modempool.operator.forwarding import SCHEMA, command_target, message_json, record_attempt
from modempool.spool.model import from_text


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """One leftover run again: the SMS `id`, and whether its command exited 0 (`detail`: what
    happened, as `forward_log` keeps it)."""

    id: int
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Retried:
    """What `retry` did: each leftover run (`runs`, in id order), and the ids asked for that
    were no leftover when their turn came (`others`: pending in a daemon, done, claimed by
    another retry, or no such SMS)."""

    runs: list[RetryOutcome]
    others: list[int]

    @property
    def failed(self) -> list[RetryOutcome]:
        return [run for run in self.runs if not run.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": [run.id for run in self.runs if run.ok],
                "failed": [{"id": run.id, "detail": run.detail} for run in self.failed],
                "not_leftovers": self.others}


def retry(spool: Any, settings: ForwardConfig, ids: Sequence[int] = (), *,
          every: bool = False) -> Retried:
    """Run the forward command once for each leftover of `ids` (all of them only with
    `every`), at most `max_parallel` at a time, each claimed first (see the module). Call it
    from synchronous code (it runs its own event loop). PoolError without a command in the
    config; NotFound, naming them, when none of `ids` was a leftover (with `every`, those
    another retry took first are named, no error)."""
    asked(ids, every, "retry")
    if not settings.command:
        raise PoolError("no forward command in the config ([forward] command): nothing to run "
                        "again")
    wanted = set(ids)
    found = []
    if "forward_log" in spool.table_names():
        ensure_schema(spool.db, SCHEMA)   # the leftovers' index, where no daemon made it yet
        found = [row.id for row in leftovers(spool) if every or row.id in wanted]
    outcomes = asyncio.run(_run_all(spool, settings, found))
    runs = [outcome for outcome in outcomes if outcome is not None]
    others = sorted((wanted - set(found)) | {i for i, o in zip(found, outcomes) if o is None})
    if others and not runs and not every:
        raise NotFound(f"{no_leftover(others)}: nothing run")
    return Retried(runs, others)


async def _run_all(spool: Any, settings: ForwardConfig,
                   ids: list[int]) -> list[RetryOutcome | None]:
    """Each of `ids` claimed and run, `max_parallel` at a time; None for one claimed first by
    another (or no leftover any more). One that fails (the database away at its claim or
    record) is raised once all the others have ended: never cancelled in the middle of their
    commands, whose claims would then name a process gone while they still run (rev24 F3)."""
    limit = asyncio.Semaphore(settings.max_parallel)

    async def one(inbound_id: int) -> RetryOutcome | None:
        async with limit:
            return await _run_one(spool, settings, inbound_id)

    ended = await asyncio.gather(*(one(inbound_id) for inbound_id in ids),
                                 return_exceptions=True)
    for outcome in ended:
        if isinstance(outcome, BaseException):
            raise outcome
    return list(ended)   # type: ignore[arg-type]


async def _run_one(spool: Any, settings: ForwardConfig, inbound_id: int) -> RetryOutcome | None:
    """One leftover claimed, its command run once, and the outcome recorded (None when it
    was no leftover by the time of its claim)."""
    command = settings.command or ""
    target = command_target(command)
    claimed = claim(spool, inbound_id, target, retry_claim(settings.timeout))
    if claimed is None:
        return None
    attempt, payload = claimed
    try:
        ok, detail = await run_command(command, payload, settings.timeout, settings.pass_env)
    except Exception as exc:   # whatever happens, the claim ends in a recorded outcome
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    record_attempt(spool, inbound_id, target, attempt, "ok" if ok else "failed", detail)
    return RetryOutcome(inbound_id, ok, detail)


def claim(spool: Any, inbound_id: int, target: str,
          detail: str) -> tuple[int, dict[str, Any]] | None:
    """Claim the leftover `inbound_id` for a retry: under the leftovers' lock, if it is one
    still, a `retrying` row (`detail`: `retry_claim`) that takes it off the list while its
    process lives. Its attempt number and the JSON its command gets; None when it is no
    leftover (another retry claimed it first, a daemon runs it, or its command is done)."""
    with locked(spool.db, LOCK):
        rows = cut_short(spool, [inbound_id])
        if not rows:
            return None
        attempt = int(rows[0]["attempt"] or 0) + 1
        spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, "
                         "detail, created_at) VALUES (?, ?, ?, 'retrying', ?, ?)",
                         [inbound_id, target, attempt, detail, now_iso(database_now(spool))])
    message = {**rows[0], "received_at": from_text(rows[0]["received_at"])}
    return attempt, message_json(spool, message)


def said(result: Retried) -> str:
    """`result` in one line for the operator."""
    done = [str(run.id) for run in result.runs if run.ok]
    line = (f"ran the forward command again for {len(result.runs)} received SMS"
            + (f": {', '.join(done)} exited 0" if done else ""))
    if result.failed:
        line += "; failed, listed again: " + "; ".join(
            f"{run.id} ({' '.join(run.detail.split())})" for run in result.failed)
    return f"{line}; {no_leftover(result.others)}" if result.others else line
