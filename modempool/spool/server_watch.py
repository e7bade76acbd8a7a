"""Whether the database server answers: a PostgreSQL engine's memory of an outage.

Without it every call during an outage waits the pool's timeout (10 s) for a connection before
it fails: a CLI `send` or an HTTP POST gets its "try again" (503) only after 10 s, and each of a
daemon's tasks stalls as long at every try. So the first call that finds the server gone (a
connection refused or lost, the server shutting down, the pool's timeout while none of its
connections is out) marks it away; a pool's timeout while some are out says the pool is busy,
not that the server is gone, and marks nothing (the engine's call fails alone, with its own
"try again"). Calls meanwhile fail at once with `SpoolUnavailable` (no connection was taken,
so nothing was sent); one probe, in a thread of its own, asks the engine whether the server
answers at once and then every `PROBE_EVERY` seconds (a fresh connection; refused as one too
many, the server is there; else an idle pooled connection answering), and the first that
succeeds marks the server back. The engine logs the
outage when it begins (with the reason), once a minute while it lasts, and when it ends (with
how long it lasted).

The probe also bounds how long a daemon takes to come back after a long outage: psycopg's pool
doubles the wait between its own reconnection attempts (up to minutes), whereas the calls here
go back to the pool within `PROBE_EVERY` of the server's return, and the engine gives the
pool's attempts up after `RECONNECT_GIVE_UP` seconds so that a call then finds it ready to
connect at once (docs/scale-out.md, "The database away").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from modempool.masked import one_line
from modempool.spool.unavailable import SpoolUnavailable, unavailable

log = logging.getLogger("modempool.spool")

#: Seconds between two attempts of the probe to reach a server that is away.
PROBE_EVERY = 1.0
#: The pool's own reconnection attempts (after a connection was lost) end after this many
#: seconds; the next call that needs a connection starts new ones, without the long waits
#: that psycopg's doubling reaches in a long outage.
RECONNECT_GIVE_UP = 5.0
#: An outage that lasts is said again this often (seconds).
SAY_AGAIN_EVERY = 60.0
#: The longest the probe's fresh connection waits for each host (seconds).
PROBE_CONNECT = 5.0
_AWAY = "the database server is away"


@dataclass(frozen=True, slots=True)
class OutageWaits:
    """How an engine waits out its server's absence: the probe's pace (`probe_every`), its
    fresh connection's wait for each host (`probe_connect`), and when the pool's own
    reconnection attempts end (`reconnect_give_up`). The defaults are the constants above;
    a test of an outage gives shorter ones, so that it waits seconds less for the same steps."""

    probe_every: float = PROBE_EVERY
    probe_connect: float = PROBE_CONNECT
    reconnect_give_up: float = RECONNECT_GIVE_UP


@dataclass(frozen=True, slots=True)
class Away:
    """The server is away since `since` (monotonic seconds), first found so by `reason`."""

    since: float
    reason: str


def server_gone(exc: BaseException) -> bool:
    """Whether `exc` says the server (not one statement) cannot be reached: a connection
    refused, lost or not given in time, the server shutting down or starting."""
    for error in (exc, exc.__cause__):   # the driver's error (SpoolOutcomeUnknown's cause)
        if error is None or isinstance(error, SpoolUnavailable):   # ours: no news
            continue
        if unavailable(error) is None:
            continue
        sqlstate = getattr(error, "sqlstate", None) or ""
        if not sqlstate or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
            return True
    return False


class ServerWatch:
    """One engine's view of its server: `check()` before a call, `failed(exc)` after one
    failed; `connect()` (given) returns when the server answers, else raises; it is tried
    every `probe_every` seconds while the server is away."""

    def __init__(self, where: str, connect: Callable[[], None], *,
                 probe_every: float = PROBE_EVERY) -> None:
        self.where = where
        self.connect = connect
        self.probe_every = probe_every
        self.away: Away | None = None
        #: Set while the server is not known to be away: cleared when it is marked away, set
        #: when the probe reaches it again (something to wait on).
        self.back = threading.Event()
        self.back.set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def check(self) -> None:
        """Raise SpoolUnavailable at once while the server is known to be away."""
        away = self.away
        if away is not None:
            raise SpoolUnavailable(_AWAY, 5, away.reason)

    def failed(self, exc: BaseException) -> None:
        """A call failed with `exc`: when it says the server is gone, the server is away
        until the probe reaches it."""
        if self.away is not None or self._closed.is_set() or not server_gone(exc):
            return
        cause = exc if unavailable(exc) is not None and not isinstance(
            exc, SpoolUnavailable) else (exc.__cause__ or exc)
        reason = _reason(cause)
        with self._lock:
            if self.away is not None:
                return
            self.away = Away(time.monotonic(), reason)
            self.back.clear()
        log.warning("the database at %s cannot be reached (%s); calls fail at once until it "
                    "answers again (tried every %g s)", self.where, reason, PROBE_EVERY)
        threading.Thread(target=self._probe, name="modempool-db-probe", daemon=True).start()

    def _probe(self) -> None:
        """Until a connection succeeds (or the engine closes): try one now, then every
        `probe_every` seconds."""
        away = self.away
        assert away is not None
        said = away.since
        while not self._closed.is_set():
            try:
                self.connect()
            except Exception as exc:  # noqa: BLE001 - any failure: still away
                now = time.monotonic()
                if now - said >= SAY_AGAIN_EVERY:
                    said = now
                    log.warning("the database at %s is still away, for %.0f s now: %s",
                                self.where, now - away.since, _reason(exc))
                self._closed.wait(self.probe_every)
                continue
            self.away = None
            self.back.set()
            log.info("the database at %s answers again, after %.1f s away", self.where,
                     time.monotonic() - away.since)
            return

    def close(self) -> None:
        """The engine closes: the probe ends."""
        self._closed.set()


def _reason(exc: BaseException) -> str:
    """Why the server is away, for a log line: the driver's words, in one line, masked."""
    found = unavailable(exc)
    return found.reason if found is not None else one_line(exc)
