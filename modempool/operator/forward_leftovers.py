"""Forward commands cut short with no mark: listed for the operator, and given up on request.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.errors import NotFound, PoolError
from modempool.operator.db import now_iso, transaction
from modempool.spool.model import from_text, to_text

#: What `give_up` writes as the `gave-up` row's detail.
GIVEN_UP = "given up by the operator (modempool forward leftovers --give-up)"


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

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "sim": self.sim, "text": self.text,
                "received_at": to_text(self.received_at) if self.received_at else None,
                "attempts": self.attempts,
                "failed_at": to_text(self.failed_at) if self.failed_at else None}


def leftovers(spool: Any) -> list[ForwardLeftover]:
    """The received SMS whose forward command was cut short with no mark, oldest first (none
    where forwarding never ran: no `forward_log`, and none is made by this look)."""
    if "forward_log" not in spool.table_names():
        return []
    return [ForwardLeftover(row["id"], row["sender"], row["sim"], row["text"],
                            from_text(row["received_at"]), int(row["attempt"] or 0),
                            from_text(row["failed_at"]))
            for row in spool.reports.commands_cut_short("forward_log")]


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
    if every and ids:
        raise PoolError("give up either the ids named or --all, not both")
    if not every and not ids:
        raise PoolError("name the received SMS to give up the forward command of (their ids, "
                        "as `modempool forward leftovers` lists them), or all of them with "
                        "--all")
    wanted = set(ids)
    rows: list[Any] = []
    if "forward_log" in spool.table_names():
        with transaction(spool.db):
            rows = [row for row in spool.reports.commands_cut_short("forward_log")
                    if every or row["id"] in wanted]
            for row in rows:
                spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, "
                                 "outcome, detail, created_at) VALUES (?, ?, ?, 'gave-up', ?, "
                                 "?)", [row["id"], row["target"], row["attempt"], GIVEN_UP,
                                        now_iso()])
    given = [row["id"] for row in rows]
    others = sorted(wanted - set(given))
    if others and not given:
        raise NotFound(f"{_no_leftover(others)}: nothing given up")
    return GivenUp(given, others)


def _no_leftover(ids: Sequence[int]) -> str:
    """The line naming `ids` asked to be given up that are no leftover."""
    return (f"no forward command cut short for received SMS {', '.join(map(str, ids))} (its "
            "command pending in a daemon, done, or no such SMS)")


def said(result: GivenUp) -> str:
    """`result` in one line for the operator."""
    line = (f"gave up the forward command of {len(result.given)} received SMS"
            + (f": {', '.join(map(str, result.given))}" if result.given else ""))
    return f"{line}; {_no_leftover(result.others)}" if result.others else line
