"""Refused PINs, remembered across restarts (`spool.refused_pins`).

A SIM gives three PIN attempts, then wants its PUK: a daemon that re-enters a wrong PIN at every
restart locks the SIM within three restarts. The driver asks this part (through
`modempool.dispatch.pins.SpoolPinMemory`) before it enters a PIN. Only a hash of the PIN, salted
with the SIM's key, is stored. All SQL of the `refused_pins` table is here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from modempool.spool.audit import AuditLog
from modempool.spool.engine import Engine
from modempool.spool.model import to_text, utcnow

_FIND = "SELECT * FROM refused_pins WHERE sim_key = ?"
_RECORD = (
    "INSERT INTO refused_pins (sim_key, pin_hash, sim, reason, attempts_left, refused_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sim_key) DO UPDATE SET pin_hash = excluded.pin_hash, "
    "sim = excluded.sim, reason = excluded.reason, attempts_left = excluded.attempts_left, "
    "refused_at = excluded.refused_at")
_FORGET = "DELETE FROM refused_pins WHERE sim_key = ?"
_BY_SIM = "SELECT * FROM refused_pins WHERE sim = ? ORDER BY refused_at DESC LIMIT 1"
_EVERY = "SELECT * FROM refused_pins ORDER BY refused_at"


def pin_hash(sim_key: str, pin: str) -> str:
    """What is stored for a refused PIN: SHA-256 of the SIM's key and the PIN."""
    return hashlib.sha256(f"{sim_key}\n{pin}".encode()).hexdigest()


def _shown(row: Any) -> dict[str, Any]:
    return {key: row[key] for key in row.keys() if key != "pin_hash"}


class RefusedPins:
    """Rows of the `refused_pins` table."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    def find(self, sim_key: str, pin: str) -> dict[str, Any] | None:
        """The refusal of this very PIN by this SIM (None: never refused, or the PIN changed)."""
        rows = self.engine.rows(_FIND, (sim_key,))
        if not rows or rows[0]["pin_hash"] != pin_hash(sim_key, pin):
            return None
        return _shown(rows[0])

    def record(self, sim_key: str, pin: str, *, sim: str | None, reason: str,
               attempts_left: int | None, now: datetime | None = None) -> None:
        """Remember that SIM `sim_key` refused `pin` (stored hashed)."""
        moment = to_text(now or utcnow())
        with self.engine.tx() as conn:
            conn.execute(_RECORD, (sim_key, pin_hash(sim_key, pin), sim, reason, attempts_left,
                                   moment))
            self.audit.record(conn, "pin-refused", sim=sim, now=moment,
                              detail={"sim_key": sim_key, "reason": reason,
                                      "attempts_left": attempts_left})

    def forget(self, sim_key: str) -> None:
        """The SIM took its (changed) PIN: its old refusal no longer holds."""
        with self.engine.tx() as conn:
            conn.execute(_FORGET, (sim_key,))

    def of_sim(self, sim: str) -> dict[str, Any] | None:
        """The latest refusal recorded for configured SIM `sim` (for status), or None."""
        rows = self.engine.rows(_BY_SIM, (sim,))
        return _shown(rows[0]) if rows else None

    def every(self) -> list[dict[str, Any]]:
        """Every remembered refusal, oldest first (for `modempool doctor`)."""
        return [_shown(row) for row in self.engine.rows(_EVERY, ())]
