"""The daemons' heartbeats (`spool.daemons`): who runs the pool, and when it last said so; and
the one rule that says from them whether a daemon is dead (`judge`), for `status` and for
settling a dead daemon's leases alike."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.box.ports import process_start
from modempool.spool.engine import Engine
from modempool.spool.model import from_text, to_text, utcnow


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a daemon is alive, and if not why ("stopped", "killed", "silent") and since when
    (its stop, or its last heartbeat); alive, `since` is its start."""

    alive: bool
    reason: str = ""
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Here:
    """Where the judging process runs: its hostname (shown, and how a daemon of an older
    modempool is placed) and its process table (`place`: the kernel's boot and pid namespace,
    see `this_place`), the only place where a daemon's pid means
    that daemon's process."""

    host: str
    place: str


def this_place() -> str:
    """Where a pid names a process, and its start the same moment: this kernel boot
    (`/proc/sys/kernel/random/boot_id`, new at every boot, never copied with a disk image), pid
    namespace (a container's own) and time namespace (where there are any: a process's start
    in /proc is shifted by the reader's boot-time offset), as 8 hex digits. Two daemons with
    the same place can look each other's pid up; with different places (two hosts, even cloned
    ones with one hostname and one /etc/machine-id; two containers; a reboot between) only the
    heartbeat tells. `MODEMPOOL_PLACE`, if set, is used instead: for tests, or for containers
    that share a pid namespace but should not trust it."""
    given = os.environ.get("MODEMPOOL_PLACE")
    if given:
        return hashlib.sha256(given.encode()).hexdigest()[:8]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            where = boot.read().strip() + os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux's /proc: the hostname, as before places
        where = socket.gethostname()
    else:
        try:
            where += os.readlink("/proc/self/ns/time")
        except OSError:  # a kernel before time namespaces (5.6): one time for all
            pass
    return hashlib.sha256(where.encode()).hexdigest()[:8]


def run_owner(host: str, pid: int, place: str, run: str) -> str:
    """A daemon run's owner, the prefix of its lease owners: `host:pid:place-run`. The hostname
    and pid are for people; the place says where the pid can be looked up; the run (a random
    token) keeps two runs apart that share all three (a pid reused, two containers' pid 1)."""
    return f"{host}:{pid}:{place}-{run}"


def owner_place(owner: str) -> str | None:
    """The place in a run's owner; None for an owner written before places (`host:pid`)."""
    fields = owner.split("/", 1)[0].split(":")
    return fields[2].split("-", 1)[0] if len(fields) >= 3 else None


def shown_owner(owner: str) -> str:
    """What a person is shown of an owner: `host:pid`."""
    return ":".join(owner.split("/", 1)[0].split(":")[:2])


def by_age(now: datetime, stale_after: float) -> Callable[[dict[str, Any]], bool]:
    """Silence judged by a heartbeat's age alone (what `status`, one look, can judge): missing,
    or older than `stale_after` seconds at `now`."""
    def silent(row: dict[str, Any]) -> bool:
        heartbeat = from_text(row.get("heartbeat_at"))
        return heartbeat is None or (now - heartbeat).total_seconds() > stale_after
    return silent


def judge(row: dict[str, Any], *, here: Here, alive: Callable[[int], bool],
          silent: Callable[[dict[str, Any]], bool],
          started: Callable[[int], int | None] = process_start) -> Verdict:
    """Whether the daemon of `row` (a `daemons` row: owner, host, pid, process_start,
    started_at, heartbeat_at, stopped_at) is dead: it stopped; or it ran in this process table
    and its process is gone (`alive` asks by pid); or its pid now names another process (one
    that `started` at another moment than the row's `process_start`: the pid was given again
    after a kill) and it is `silent`; or it ran elsewhere and is `silent` (hung, or on a host
    that went away; recovery asks a `HeartbeatWatch`, `status` the heartbeat's age). In this
    process table the daemon's own process, while it exists and its start can be read, is
    alive however late its heartbeat: a daemon whose spool writes lag (the database away for a
    while) is never judged dead by itself or a neighbour of its user, so its leases stay its
    own. A start that differs is no proof by itself (a judge whose /proc shows starts
    otherwise: another time namespace, a /proc of another pid namespace): such a daemon is
    judged by its heartbeat, as one elsewhere is, so one that keeps beating is never dead
    ("killed" once silent: its pid names another process). So is one whose start cannot be
    read now (a /proc mounted `hidepid`, the pid another user's process: a dead run's pid
    given again, or a live daemon of that user): "silent" once its heartbeat stands still,
    since nothing shows its process gone; a judge of another user may then find a live daemon
    whose writes lag dead, where one of its own user never does (rev21b L3; a takeover it
    makes requeues leases, and the markers' holds keep a part from going out twice). A row
    with no `process_start` (a daemon of a modempool before schema 17) is judged by its pid
    alone, and one of an older modempool still (an owner with no place) is placed by its
    hostname, as it was then."""
    heartbeat = from_text(row.get("heartbeat_at"))
    if row.get("stopped_at"):
        return Verdict(False, "stopped", from_text(row["stopped_at"]))
    pid = row.get("pid")
    place = owner_place(str(row.get("owner") or ""))
    in_this_table = place == here.place if place is not None else row.get("host") == here.host
    if in_this_table and pid is not None:
        if not alive(int(pid)):
            return Verdict(False, "killed", heartbeat)
        there = _process_there(row, started)
        if there != "its own" and silent(row):
            return Verdict(False, "killed" if there == "another" else "silent", heartbeat)
    elif silent(row):
        return Verdict(False, "silent", heartbeat)
    return Verdict(True, "", from_text(row.get("started_at")))


def _process_there(row: dict[str, Any], started: Callable[[int], int | None]) -> str:
    """What `row`'s live pid names now: "another" process (one that started at another
    moment), "unseen" (its start cannot be read now: a /proc mounted `hidepid`, where another
    user's process under the pid is hidden, yet `kill(pid, 0)` finds it) or "its own". A row
    with no start (from before start times were kept): "its own", judged by its pid alone."""
    recorded = row.get("process_start")
    if recorded is None:
        return "its own"
    now_there = started(int(row["pid"]))
    if now_there is None:
        return "unseen"
    return "its own" if now_there == int(recorded) else "another"


class HeartbeatWatch:
    """What one daemon has seen of the others' heartbeats while it could see the database.

    A daemon elsewhere is silent only once its heartbeat has stood still through `stale_after`
    seconds of this watch's own unbroken looking. Heartbeats are compared with each other, never
    with this host's clock (no clock skew between hosts counts), and the time is this process's
    monotonic clock. Losing sight (a look that failed, took longer than `gap`, or came more than
    `gap` after the last) starts every clock again: after a database outage for everyone, no
    one is silent until a whole window has passed with their heartbeat seen not moving."""

    def __init__(self, stale_after: float, *, gap: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self.gap = gap
        self.clock = clock
        self._seen: dict[str, tuple[Any, float]] = {}  # owner -> (heartbeat, first seen at)
        self._looked: float | None = None              # when the last good look began
        self._sight_since: float | None = None         # when the unbroken looking began

    def lost_sight(self) -> None:
        """The database could not be read: what was seen no longer counts."""
        self._seen.clear()
        self._looked = self._sight_since = None

    def look(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        """Read the daemons' rows with `read` and note whose heartbeat moved."""
        began = self.clock()
        try:
            rows = read()
        except Exception:
            self.lost_sight()
            raise
        ended = self.clock()
        if self._looked is None or began - self._looked > self.gap or ended - began > self.gap:
            self._seen.clear()
            self._sight_since = ended
        self._looked = began
        seen = {}
        for row in rows:
            owner, heartbeat = row["owner"], row.get("heartbeat_at")
            known = self._seen.get(owner)
            seen[owner] = known if known is not None and known[0] == heartbeat else (heartbeat,
                                                                                    ended)
        self._seen = seen

    def silent(self, row: dict[str, Any]) -> bool:
        """Whether `row`'s heartbeat is the one seen standing still for a whole window (a lease
        owner that never beat: once the looking itself has lasted a whole window)."""
        if self._looked is None or self._sight_since is None:
            return False
        if row.get("heartbeat_at") is None and row["owner"] not in self._seen:
            return self._looked - self._sight_since >= self.stale_after
        known = self._seen.get(row["owner"])
        return (known is not None and known[0] == row.get("heartbeat_at")
                and self._looked - known[1] >= self.stale_after)


class Daemons:
    """Rows of the `daemons` table; `spool.daemons()` lists them, the latest heartbeat first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def beat(self, owner: str, *, host: str, pid: int, started_at: datetime,
             process_started: int | None = None, now: datetime | None = None) -> None:
        """Record that daemon `owner` (process `pid`, which the kernel started at
        `process_started`: `box.ports.process_start`) is alive at `now`."""
        moment = to_text(now or utcnow())
        with self.engine.tx() as conn:
            conn.execute(
                "INSERT INTO daemons (owner, host, pid, process_start, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (owner, host, pid, process_started, to_text(started_at), moment))

    def stopped(self, owner: str, now: datetime | None = None) -> None:
        """A graceful stop: the SIM states in the spool are no longer current."""
        with self.engine.tx() as conn:
            conn.execute("UPDATE daemons SET stopped_at = ? WHERE owner = ?",
                         (to_text(now or utcnow()), owner))

    def __call__(self) -> list[dict[str, Any]]:
        """Every daemon run recorded, the latest heartbeat first."""
        return [dict(r) for r in self.engine.rows(
            "SELECT * FROM daemons ORDER BY heartbeat_at DESC")]
