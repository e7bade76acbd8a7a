"""Forward commands cut short with no mark: listed for the operator, and run again
(`forward_retry.py`) or given up on request.

Since schema 15 a received SMS's forward command is the last of its durable hooks
(`forwarding.command_step`): it is pending in `inbound_hooks` until its final outcome is
recorded, and a daemon runs it again after a stop or kill. A run cut short before that upgrade
(or one whose step was passed after a bug) has no mark: its last attempt stays `failed` in
`forward_log`, and the daemon runs it again no more (on a shared spool every daemon would, at
once: audit20 L1). `leftovers` lists such SMS (`modempool forward leftovers`, and a line of
`modempool status`), so the operator sees them; `give_up` records `gave-up` for them once the
operator has dealt with them (run the command by hand, or decided it need not run), and they
are listed no more. Giving up names the SMS ids (or says `--all`), and says which of those
were no leftover: none given up is an error.

An operator's retry claims a leftover first (`forward_retry.claim`): a `retrying` row naming
its process (`retry_claim`), written under the leftovers' lock once the SMS is seen to be a
leftover still, so two retries at once (two processes, two boxes on one PostgreSQL) never run
the same command twice. While that process lives the SMS is no leftover; once it is gone (its
pid gone or given to another process, in this process table; elsewhere, `for at most` seconds
after the claim by the database's clock: the command's timeout and `RETRY_GRACE`) the claim was cut short and the SMS
is listed again (`spool.daemons.judge`, the rule that tells a daemon dead).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from modempool.box.ports import process_exists, process_start
from modempool.errors import NotFound, PoolError
from modempool.operator.db import ensure_schema, locked, now_iso
from modempool.operator.forwarding import SCHEMA
from modempool.spool.daemons import Here, by_age, judge, run_owner, this_place
from modempool.spool.model import from_text, to_text

#: What `give_up` writes as the `gave-up` row's detail.
GIVEN_UP = "given up by the operator (modempool forward leftovers --give-up)"
#: The lock under which a leftover is seen to be one and then claimed or given up.
LOCK = "forward leftovers"
#: Seconds past the command's timeout a retry's process elsewhere has to record the outcome
#: (start the command, wait for the database) before its claim counts as cut short.
RETRY_GRACE = 60
_CLAIM = re.compile(r"retry running in (?P<owner>[^\s:]+:(?P<pid>\d+):\S+), process start "
                    r"(?P<start>\d+|unknown), for at most (?P<seconds>\d+) s")


@dataclass(frozen=True, slots=True)
class ForwardLeftover:
    """A received SMS whose forward command was cut short with no mark: its last attempt
    (`attempts` made) failed at `failed_at`, and nothing runs it again."""

    id: int
    sender: str
    sim: str | None
    text: str
    received_at: datetime | None
    attempts: int
    failed_at: datetime | None
    retry_cut_short: bool = False   # its last run was an operator's retry, cut short

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "sim": self.sim, "text": self.text,
                "received_at": to_text(self.received_at) if self.received_at else None,
                "attempts": self.attempts,
                "failed_at": to_text(self.failed_at) if self.failed_at else None,
                "retry_cut_short": self.retry_cut_short}


def leftovers(spool: Any, *, now: datetime | None = None) -> list[ForwardLeftover]:
    """The received SMS whose forward command was cut short with no mark, oldest first (none
    where forwarding never ran: no `forward_log`, and none is made by this look); an
    operator's retry counts as cut short once its process is judged gone at `now`."""
    if "forward_log" not in spool.table_names():
        return []
    return [ForwardLeftover(row["id"], row["sender"], row["sim"], row["text"],
                            from_text(row["received_at"]), int(row["attempt"] or 0),
                            from_text(row["created_at"]), row["outcome"] == "retrying")
            for row in cut_short(spool, now=now)]


def cut_short(spool: Any, ids: Sequence[int] | None = None, *,
              now: datetime | None = None) -> list[dict[str, Any]]:
    """The rows of `Reports.commands_cut_short` (of `ids` only, when given) that are
    leftovers: a failed attempt, or a retry whose process is gone (`claim_alive`)."""
    here = Here(socket.gethostname(), this_place())
    rows = spool.reports.commands_cut_short("forward_log", ids)
    if all(row["outcome"] != "retrying" for row in rows):
        return rows
    at = now or database_now(spool)
    return [row for row in rows
            if row["outcome"] != "retrying" or not claim_alive(row, here, at)]


def database_now(spool: Any) -> datetime:
    """Now on the spool's shared clock (the database server's on PostgreSQL, which several
    boxes share; this host's for an SQLite file): a claim is written and judged by it, so a
    box whose clock is ahead of another's never finds that box's running retry out of time
    (rev24 F3)."""
    return datetime.fromtimestamp(spool.db.clock(), timezone.utc)


def retry_claim(timeout: float) -> str:
    """The detail of a `retrying` row this process writes: its owner (`run_owner`: host, pid,
    place, a token), its process's start, and how long it may take (`RETRY_GRACE` past the
    command's `timeout`)."""
    start = process_start(os.getpid())
    owner = run_owner(socket.gethostname(), os.getpid(), this_place(), secrets.token_hex(3))
    return (f"retry running in {owner}, process start "
            f"{start if start is not None else 'unknown'}, for at most "
            f"{int(timeout + RETRY_GRACE)} s")


def claim_alive(row: dict[str, Any], here: Here, now: datetime) -> bool:
    """Whether the retry claimed by `row` (a `retrying` row) may still run: its process lives
    in this process table, or, elsewhere, its time is not up at `now`. A detail not written
    by `retry_claim` names nobody: cut short."""
    claim = _CLAIM.fullmatch(str(row["detail"] or ""))
    if claim is None:
        return False
    start = claim["start"]
    daemon_like = {"owner": claim["owner"], "host": claim["owner"].split(":", 1)[0],
                   "pid": int(claim["pid"]),
                   "process_start": int(start) if start.isdigit() else None,
                   "started_at": row["created_at"], "heartbeat_at": row["created_at"],
                   "stopped_at": None}
    return judge(daemon_like, here=here, alive=process_exists,
                 silent=by_age(now, float(claim["seconds"]))).alive


@dataclass(frozen=True, slots=True)
class GivenUp:
    """What `give_up` did: the SMS ids `given` up, and those asked for that were no
    leftover (`others`: their command pending in a daemon, done, or no such SMS)."""

    given: list[int]
    others: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"given_up": self.given, "not_leftovers": self.others}


def give_up(spool: Any, ids: Sequence[int] = (), *, every: bool = False) -> GivenUp:
    """Record `gave-up` for the leftovers `ids` (all of them only with `every`: no ids is a
    slip, not a wish to give up everything), under the target of each one's last attempt, in
    one transaction with their look: they are listed no more, and a handler that resumes
    (`make_forward_handler(command=True)`) leaves them too. Ids that are no leftover are
    named in the result; none given up of the ids asked for is `NotFound`, naming them."""
    asked(ids, every, "give up")
    wanted = set(ids)
    rows: list[Any] = []
    if "forward_log" in spool.table_names():
        ensure_schema(spool.db, SCHEMA)   # the leftovers' index, where no daemon made it yet
        with locked(spool.db, LOCK):
            rows = [row for row in cut_short(spool) if every or row["id"] in wanted]
            for row in rows:
                spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, "
                                 "outcome, detail, created_at) VALUES (?, ?, ?, 'gave-up', ?, "
                                 "?)", [row["id"], row["target"], row["attempt"], GIVEN_UP,
                                        now_iso()])
    given = [row["id"] for row in rows]
    others = sorted(wanted - set(given))
    if others and not given:
        raise NotFound(f"{no_leftover(others)}: nothing given up")
    return GivenUp(given, others)


def asked(ids: Sequence[int], every: bool, verb: str) -> None:
    """PoolError unless the operator named ids or `every` (`--all`), not both: no ids is a
    slip, not a wish to act on every leftover."""
    if every and ids:
        raise PoolError(f"{verb} either the ids named or --all, not both")
    if not every and not ids:
        raise PoolError(f"name the received SMS to {verb} the forward command of (their ids, "
                        "as `modempool forward leftovers` lists them), or all of them with "
                        "--all")


def no_leftover(ids: Sequence[int]) -> str:
    """The line naming `ids` asked for (to give up or to retry) that are no leftover."""
    return (f"no forward command cut short for received SMS {', '.join(map(str, ids))} (its "
            "command pending in a daemon, done, or no such SMS)")


def said(result: GivenUp) -> str:
    """`result` in one line for the operator."""
    line = (f"gave up the forward command of {len(result.given)} received SMS"
            + (f": {', '.join(map(str, result.given))}" if result.given else ""))
    return f"{line}; {no_leftover(result.others)}" if result.others else line
