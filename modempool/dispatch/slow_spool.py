"""A spool call that waits too long, said in the daemon's log (`SlowSpoolWatch`).

A database can stop answering without failing. A COMMIT on a PostgreSQL primary whose only
synchronous standby is gone, or on a promoted standby that kept `synchronous_standby_names`,
waits (wait_event SyncRep) until a standby confirms it: no error, no timeout, for as long as it
lasts. Nothing fails, so nothing is logged: the lanes' threads wait in their commits, the
modems send nothing, the heartbeats stand still, and the log falls silent.

So the daemon looks, about once a second on its event loop, at the oldest call still
unanswered in its lanes (one timer for the daemon, nothing per call). A call waiting longer
than `after` seconds is said as a warning, again at most once a minute while it lasts, and the
database's answer after it in one line more. Nothing is retried or given up here: the data is
safe (the commit that waits is not lost), the calls finish when the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from modempool.dispatch.spool_lane import SpoolLane

log = logging.getLogger("modempool.dispatch.daemon")

#: A wait that lasts is said again this often (seconds).
SAY_AGAIN_EVERY = 60.0


class SlowSpoolWatch:
    """Watches `lanes` for a call unanswered longer than `after` seconds (see the module)."""

    def __init__(self, lanes: Sequence[SpoolLane], where: str, after: float = 10.0) -> None:
        self.lanes = lanes
        self.where = where   # the database, as the log names it (no password)
        self.after = after
        self._since: float | None = None   # when the call found waiting was submitted
        self._said = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Look every second (more often for a short `after`) until `stop` is set."""
        every = min(1.0, self.after / 4)
        while not stop.is_set():
            self.look(time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()

    def look(self, now: float) -> None:
        """Log what the lanes' oldest unanswered call says at `now` (monotonic seconds)."""
        oldest = min((t for lane in self.lanes if (t := lane.oldest_pending()) is not None),
                     default=None)
        if oldest is not None and now - oldest >= self.after:
            if self._since is None or now - self._said >= SAY_AGAIN_EVERY:
                if self._since is None:
                    self._since = oldest
                self._said = now
                log.warning("the database at %s has not answered for %.0f s (a commit waiting "
                            "for synchronous replication? a lock?); sending waits until it "
                            "answers", self.where, now - self._since)
        elif self._since is not None:
            log.info("the database at %s answers again, after %.0f s", self.where,
                     now - self._since)
            self._since = None
