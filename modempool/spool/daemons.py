"""The daemons' heartbeats (`spool.daemons`): who runs the pool, and when it last said so."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.model import to_text, utcnow


class Daemons:
    """Rows of the `daemons` table; `spool.daemons()` lists them, the latest heartbeat first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def beat(self, owner: str, *, host: str, pid: int, started_at: datetime,
             now: datetime | None = None) -> None:
        """Record that daemon `owner` is alive at `now`."""
        moment = to_text(now or utcnow())
        with self.engine.tx() as conn:
            conn.execute(
                "INSERT INTO daemons (owner, host, pid, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (owner, host, pid, to_text(started_at), moment))

    def stopped(self, owner: str, now: datetime | None = None) -> None:
        """A graceful stop: the SIM states in the spool are no longer current."""
        with self.engine.tx() as conn:
            conn.execute("UPDATE daemons SET stopped_at = ? WHERE owner = ?",
                         (to_text(now or utcnow()), owner))

    def __call__(self) -> list[dict[str, Any]]:
        """Every daemon run recorded, the latest heartbeat first."""
        return [dict(r) for r in self.engine.rows(
            "SELECT * FROM daemons ORDER BY heartbeat_at DESC")]
