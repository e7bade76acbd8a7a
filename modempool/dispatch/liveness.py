"""Is the daemon alive? Its heartbeat in the spool, read by `status` and the front ends.

The daemon writes a heartbeat every few seconds (a sixth of `[pool] silent_after`) and a stop time when it stops gracefully. A daemon killed with SIGKILL (or a host
that lost power) leaves only its last heartbeat: once its process is gone from this process
table (`this_place`), or (elsewhere) its heartbeat is older than `[pool] silent_after` (asked
of every caller: `status`, a USSD request, never a constant of its own), the SIM states
in the spool are history, not news, and must not be shown as "up". The rule is
`spool.daemons.judge`, the one that settling a dead daemon's leases uses too (there with a
`HeartbeatWatch` for "silent", see `modempool/dispatch/shared.py`).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from modempool.box.ports import process_exists
from modempool.spool.daemons import Here, by_age, judge, run_owner, shown_owner, this_place
from modempool.spool.model import from_text, utcnow

def new_run_owner(host: str | None = None, pid: int | None = None) -> str:
    """The owner of a new daemon run here (`run_owner`: this host, process and place, and a
    random token of its own)."""
    return run_owner(host or socket.gethostname(), pid or os.getpid(), this_place(),
                     secrets.token_hex(3))


def here() -> Here:
    """This process's hostname and place, for judging other daemons."""
    return Here(socket.gethostname(), this_place())


@dataclass(frozen=True, slots=True)
class DaemonLiveness:
    """What the spool says about the daemon that serves it."""

    running: bool
    owner: str | None = None          # the latest daemon run (host:pid:place-run); None: never ran
    since: datetime | None = None     # running: start time; else when it stopped or went silent
    reason: str = ""                  # why it is not running: "stopped", "killed", "silent"

    def describe(self, tz: tzinfo | None = None) -> str:
        """One line for `status`: "daemon running since …" / "daemon not running since …"
        (local time of `tz`, the `[pool] timezone`)."""
        if self.owner is None:
            return "daemon not running (it never ran on this spool)"
        when = _local(self.since, tz)
        shown = shown_owner(self.owner)
        if self.running:
            return f"daemon running since {when} ({shown})"
        why = {"stopped": "stopped", "killed": "its process is gone",
               "silent": "no heartbeat: hung, on a host that went away, or a process this "
                         "user cannot see"}.get(self.reason, "")
        return f"daemon not running since {when} ({shown}{': ' + why if why else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "owner": self.owner,
                "since": self.since.isoformat() if self.since else None, "reason": self.reason}


def daemon_liveness(spool: Any, *, stale_after: float,
                    now: datetime | None = None) -> DaemonLiveness:
    """The state of the latest daemon recorded in `spool` (any daemon running wins); one
    elsewhere whose heartbeat is older than `stale_after` (`[pool] silent_after`) is silent."""
    rows = spool.daemons()
    if not rows:
        return DaemonLiveness(False)
    silent, where = by_age(now or utcnow(), stale_after), here()
    judged = [_judge(row, where, silent) for row in rows]
    return next((j for j in judged if j.running), judged[0])


def running_rows(spool: Any, *, stale_after: float,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """The `daemons` rows of every daemon running now, by the rule of `daemon_liveness`
    (several hosts may share a PostgreSQL queue)."""
    silent, where = by_age(now or utcnow(), stale_after), here()
    return [row for row in spool.daemons() if _judge(row, where, silent).running]


def _judge(row: dict[str, Any], where: Here, silent: Any) -> DaemonLiveness:
    """`spool.daemons.judge`: the one rule of a dead daemon, from here, by heartbeat age (one
    look is all `status` has)."""
    verdict = judge(row, here=where, alive=process_exists, silent=silent)
    return DaemonLiveness(verdict.alive, row["owner"], verdict.since, verdict.reason)


def current_sim_state(row: dict[str, Any], liveness: DaemonLiveness) -> dict[str, Any]:
    """A SIM row as `status` shows it: with no daemon running, its state is unknown (the last
    one the daemon recorded is kept as `last_state`)."""
    shown = dict(row)
    if not liveness.running and row.get("state") not in (None, "unknown"):
        shown["last_state"] = row["state"]
        shown["state"] = "unknown"
    return shown


def _local(moment: datetime | None, tz: tzinfo | None = None) -> str:
    from modempool.when import local_text

    return local_text(moment, tz) or "?"


def sim_note(row: dict[str, Any], tz: tzinfo | None = None) -> str:
    """What `status` says beside a SIM: why and until when it is quarantined, why it is down,
    or its last state when no daemon runs (times local to `tz`)."""
    state = row.get("state")
    if row.get("no_credit"):
        return f"out of credit (balance {row.get('balance')}): out of rotation until topped up"
    if state == "quarantined":
        until = from_text(row.get("quarantined_until"))
        return (f"{row.get('last_error') or 'quarantined'}"
                + (f"; until {_local(until, tz)}" if until else ""))
    if state in ("down", "locked", "standby") and row.get("last_error"):
        return str(row["last_error"])
    if state == "unknown" and row.get("last_state"):
        return f"last seen {row['last_state']} at {_local(from_text(row.get('updated_at')), tz)}"
    return ""
