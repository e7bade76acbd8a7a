"""Several daemons, one queue: what a daemon does differently on a shared (PostgreSQL) spool.

On SQLite one daemon holds the spool (a lock file), so every lease found at start is a dead
process's. On a database that daemons on several hosts share, a lease may be a live daemon's:
only the run-out leases of dead daemons are settled (by the same rule as ever: queued if no
part was written, ambiguous if one may have gone out), at start and then every few seconds, so
that a survivor carries on a killed daemon's messages. A daemon in this process table is dead
when its process is gone; one elsewhere when its heartbeat stood still through `[pool]
silent_after` seconds of this daemon's own unbroken sight of the database (`HeartbeatWatch`):
a database outage, for everyone or for this daemon, takes nobody's leases. The hooks of the SMS a
dead daemon stored and had not run are taken over by the same rule (`dead_runs`). An enqueue anywhere NOTIFYs: idle
dispatchers wake at once instead of at their next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from modempool.box.ports import process_exists
from modempool.dispatch.liveness import here
from modempool.spool.daemons import HeartbeatWatch
from modempool.spool.recovery import judged_dead
from modempool.spool.unavailable import log_failure

#: Seconds of one wait for a NOTIFY, in a thread that a stop cannot interrupt: the longest a
#: daemon's stop waits for it (an idle daemon wakes this often, for nothing but a select()).
LISTEN_WAIT = 0.2

log = logging.getLogger("modempool.shared")


def is_shared(spool: Any) -> bool:
    """Whether other daemons may use this spool at the same time (a database server)."""
    return getattr(getattr(spool, "engine", None), "name", "sqlite") != "sqlite"


def dead_runs(spool: Any, watch: HeartbeatWatch) -> Callable[[list[str]], list[str]]:
    """Which of some daemon runs are dead, by the rule that settles their leases (the watch
    as `watch_dead_daemons` keeps it): whose received SMS' pending hooks a live daemon takes."""
    def dead(owners: list[str]) -> list[str]:
        return judged_dead(spool.engine, owners, here=here(), alive=process_exists,
                           silent=watch.silent)
    return dead


def recover_dead(spool: Any, watch: HeartbeatWatch) -> Any:
    """Look at the daemons' heartbeats, then settle the run-out leases of dead daemons (never
    a live one's); returns the Recovery. A failure loses the watch's sight."""
    try:
        watch.look(spool.daemons)
        return spool.recover_dead_owners(here=here(), alive=process_exists, silent=watch.silent)
    except Exception:
        watch.lost_sight()
        raise


async def watch_dead_daemons(spool: Any, stop: asyncio.Event, wake: Callable[[], None],
                             watch: HeartbeatWatch, every: float) -> None:
    """Every `every` seconds: take over what dead daemons left (queued again or ambiguous)."""
    while not stop.is_set():
        try:
            recovery = await asyncio.to_thread(recover_dead, spool, watch)
            if recovery.requeued or recovery.ambiguous or recovery.sent:
                log.warning("took over leases of a dead daemon: %d requeued, %d ambiguous, "
                            "%d sent", len(recovery.requeued), len(recovery.ambiguous),
                            len(recovery.sent))
                wake()
        except Exception as exc:  # the database away: the next round will do
            log_failure(log, "could not look for dead daemons' leases", exc)
        try:
            async with asyncio.timeout(every):
                await stop.wait()
        except TimeoutError:
            pass


async def wake_on_enqueue(spool: Any, stop: asyncio.Event, wake: Callable[[], None]) -> None:
    """Wake the dispatcher when any host queues a message (LISTEN; short waits in a thread so
    that a stop is never kept waiting long: `LISTEN_WAIT`)."""
    while not stop.is_set():
        try:
            if await asyncio.to_thread(spool.engine.wait_for_enqueue, LISTEN_WAIT):
                wake()
        except Exception as exc:  # connection lost: the dispatcher still polls meanwhile
            log_failure(log, "enqueue notifications interrupted", exc)
            spool.engine.forget_listener()
            try:
                async with asyncio.timeout(2.0):
                    await stop.wait()
            except TimeoutError:
                pass
