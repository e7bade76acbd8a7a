"""Values of the spool: message states, the `Message` row, and how times are stored.

Times are stored as fixed-width ISO-8601 UTC text (`2026-11-25T16:25:19.123Z`) so that the
database stays readable and text comparison in SQL orders them correctly.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from modempool.errors import PoolError


class MessageState(str, Enum):
    """Where a message is in its life: queued → sending → sent → delivered, or a final failure."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    AMBIGUOUS = "ambiguous"  # a PDU may have reached the modem but the outcome is unknown

    def __str__(self) -> str:
        return self.value


#: States a message does not leave on its own (retry/cancel are user decisions).
FINAL_STATES = frozenset(
    {
        MessageState.SENT,
        MessageState.DELIVERED,
        MessageState.FAILED,
        MessageState.EXPIRED,
        MessageState.CANCELLED,
        MessageState.AMBIGUOUS,
    }
)
#: Final states that mean the message went out.
SUCCESS_STATES = frozenset({MessageState.SENT, MessageState.DELIVERED})
#: States `retry` moves back to queued.
RETRYABLE_STATES = frozenset({MessageState.FAILED, MessageState.AMBIGUOUS, MessageState.EXPIRED})


class LeaseLost(PoolError):
    """The dispatcher no longer holds the lease on a message: it must not write it to a modem."""


class CardLost(LeaseLost):
    """The lease on the message is still the dispatcher's, but its modem's SIM card is no
    longer held by this daemon run (`card_holders`: another daemon took it over, or the hold
    is gone): it must not write it; the modem stops sending until it takes its card again."""


class StateConflict(PoolError):
    """An operation that the message's current state does not allow (cancel a sent message...)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_text(moment: datetime | None) -> str | None:
    """Stored form of a datetime; a naive datetime is read as local time."""
    if moment is None:
        return None
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def from_text(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Message:
    """One row of the `messages` table."""

    id: int
    to: str
    text: str
    state: MessageState
    sim: str | None
    attempts: int
    priority: int
    client_id: str | None
    campaign_id: int | None
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None
    expires_at: datetime | None
    error: str | None
    parts_total: int | None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    quiet_hours: bool = False
    sims: tuple[str, ...] | None = None
    held: bool = False
    avoid_sim: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Message:
        sims = row["sims"]
        return cls(
            id=row["id"],
            to=row["to_number"],
            text=row["text"],
            state=MessageState(row["state"]),
            sim=row["sim"],
            attempts=row["attempts"],
            priority=row["priority"],
            client_id=row["client_id"],
            campaign_id=row["campaign_id"],
            created_at=from_text(row["created_at"]),
            updated_at=from_text(row["updated_at"]),
            not_before=from_text(row["not_before"]),
            expires_at=from_text(row["expires_at"]),
            error=row["error"],
            parts_total=row["parts_total"],
            sent_at=from_text(row["sent_at"]),
            delivered_at=from_text(row["delivered_at"]),
            quiet_hours=bool(row["quiet_hours"]),
            sims=tuple(json.loads(sims)) if sims else None,
            held=bool(row["held"]),
            avoid_sim=row["avoid_sim"],
            lease_owner=row["lease_owner"],
            lease_until=from_text(row["lease_until"]),
        )

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the keys of `queue --json` (id, to, text, state, sim, attempts, ...)."""
        out = asdict(self)
        out["state"] = self.state.value
        out["sims"] = list(self.sims) if self.sims is not None else None
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = to_text(value)
        return out


@dataclass(frozen=True, slots=True)
class Recovery:
    """What `Spool.recover_leases` did with the leases it found."""

    requeued: tuple[int, ...] = ()
    ambiguous: tuple[int, ...] = ()
    sent: tuple[int, ...] = ()
    refused: tuple[int, ...] = ()   # left SENDING: the database refused to settle them
    # left SENDING for the next recovery: a part of each held by another transaction (a
    # record on its way: `recovery._part_held`)
    held: tuple[int, ...] = ()
