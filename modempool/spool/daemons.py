"""The daemons' heartbeats (mixed into `Spool`): who runs the pool, and when it last said so."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from modempool.spool.model import to_text, utcnow

if TYPE_CHECKING:
    from modempool.spool import Spool


class DaemonsMixin:
    """Rows of the `daemons` table."""

    def beat(self: Spool, owner: str, *, host: str, pid: int, started_at: datetime,
             now: datetime | None = None) -> None:
        """Record that daemon `owner` is alive at `now`."""
        moment = to_text(now or utcnow())
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO daemons (owner, host, pid, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (owner, host, pid, to_text(started_at), moment))

    def daemon_stopped(self: Spool, owner: str, now: datetime | None = None) -> None:
        """A graceful stop: the SIM states in the spool are no longer current."""
        with self._tx() as conn:
            conn.execute("UPDATE daemons SET stopped_at = ? WHERE owner = ?",
                         (to_text(now or utcnow()), owner))

    def daemons(self: Spool) -> list[dict[str, Any]]:
        """Every daemon run recorded, the latest heartbeat first."""
        return [dict(r) for r in self._rows("SELECT * FROM daemons ORDER BY heartbeat_at DESC")]
