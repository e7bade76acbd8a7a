"""The daemons' heartbeats (`spool.daemons`): who runs the pool, and when it last said so; and
the one rule that says from them whether a daemon is dead (`judge`), for `status` and for
settling a dead daemon's leases alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.model import from_text, to_text, utcnow


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a daemon is alive, and if not why ("stopped", "killed", "silent") and since when
    (its stop, or its last heartbeat); alive, `since` is its start."""

    alive: bool
    reason: str = ""
    since: datetime | None = None


def judge(row: dict[str, Any], *, now: datetime, stale_after: float, host: str,
          alive: Callable[[int], bool]) -> Verdict:
    """Whether the daemon of `row` (a `daemons` row: host, pid, started_at, heartbeat_at,
    stopped_at) is dead: it stopped; or it ran on this `host` and its process is gone (`alive`
    asks by pid); or it ran elsewhere and its heartbeat is missing or older than `stale_after`
    seconds (hung, or on a host that went away). On this host a process that still exists is
    alive, however late its heartbeat: a daemon whose spool writes lag (the database away for
    a while) is never judged dead by itself or a neighbour, so its leases stay its own."""
    heartbeat = from_text(row.get("heartbeat_at"))
    if row.get("stopped_at"):
        return Verdict(False, "stopped", from_text(row["stopped_at"]))
    pid = row.get("pid")
    if row.get("host") == host and pid is not None:
        if not alive(int(pid)):
            return Verdict(False, "killed", heartbeat)
    elif heartbeat is None or (now - heartbeat).total_seconds() > stale_after:
        return Verdict(False, "silent", heartbeat)
    return Verdict(True, "", from_text(row.get("started_at")))


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
