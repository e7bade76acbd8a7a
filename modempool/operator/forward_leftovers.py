"""Forward commands cut short with no mark: listed for the operator, and given up on request.

Since schema 15 a received SMS's forward command is the last of its durable hooks
(`forwarding.command_step`): it is pending in `inbound_hooks` until its final outcome is
recorded, and a daemon runs it again after a stop or kill. A run cut short before that upgrade
(or one whose step was passed after a bug) has no mark: its last attempt stays `failed` in
`forward_log`, and the daemon runs it again no more (on a shared spool every daemon would, at
once: audit20 L1). `leftovers` lists such SMS (`modempool forward leftovers`, and a line of
`modempool status`), so the operator sees them; `give_up` records `gave-up` for them once the
operator has dealt with them (run the command by hand, or decided it need not run), and they
are listed no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


def give_up(spool: Any, ids: Sequence[int] | None = None) -> list[int]:
    """Record `gave-up` for the leftovers (those of `ids` only, where given), under the
    target of each one's last attempt, in one transaction with their look: they are listed no
    more, and a handler that resumes (`make_forward_handler(command=True)`) leaves them too.
    Returns the SMS ids given up."""
    if "forward_log" not in spool.table_names():
        return []
    wanted = None if ids is None else set(ids)
    with transaction(spool.db):
        rows = [row for row in spool.reports.commands_cut_short("forward_log")
                if wanted is None or row["id"] in wanted]
        for row in rows:
            spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, "
                             "detail, created_at) VALUES (?, ?, ?, 'gave-up', ?, ?)",
                             [row["id"], row["target"], row["attempt"], GIVEN_UP, now_iso()])
    return [row["id"] for row in rows]
