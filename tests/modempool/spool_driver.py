"""A test driver for the spool: lease the next message one SIM may carry, as a dispatcher round
would for that SIM alone. The product's dispatcher (modempool/dispatch/dispatcher.py) does this
with every SIM at once, choosing among them and applying the send-time rules (opt-outs,
blacklist); the spool tests only need "the next one for m1"."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def claim_next(spool: Any, sim: str, lease_owner: str, lease_seconds: float = 300.0,
               now: datetime | None = None) -> Any:
    """Lease the best due message `sim` may carry (its `sims` allow it; it did not ask to avoid
    `sim`), expired ones expired first; None when there is none."""
    spool.expire_due(now)
    with spool.transaction():   # rows another daemon's round holds are skipped (PostgreSQL)
        for message in spool.dispatchable(now, limit=10_000, lock=True):
            if (message.sims and sim not in message.sims) or message.avoid_sim == sim:
                continue
            claimed = spool.claim(message.id, sim, lease_owner, lease_seconds, now=now)
            if claimed is not None:
                return claimed
    return None
