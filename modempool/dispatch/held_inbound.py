"""What a modem showed without keeping it (``+CMT``, ``+CDS``) while the spool could not take it.

A received SMS or delivery report with a storage index stays on the modem when the spool cannot
store it: it is released and the next sweep hands it over again. One shown directly (``+CMT``,
``+CDS``: no index) is on no modem to sweep, so it is held here, in the daemon's memory, in the
order it came, and stored when the database answers again; the modem's later ones of that kind
queue behind it, so reports and parts are applied in order.

Why held here rather than left unacknowledged (``AT+CNMA`` withheld): TS 27.005 3.4.4 has the
modem answer the network with an error when no ``+CNMA`` comes in time and then turn its
``+CNMI`` routing off, so every later ``+CMT``/``+CDS`` would go unseen until the modem is set up
again (the simulator does so too); a report refused that way is not sent again by the network,
and a modem under ``AT+CSMS=0`` has acknowledged it already. So it is acknowledged as before and
kept here: lost only if the daemon stops (or dies) before the database is back. At the stop
the backoff is cut short and what is held is tried once more (`CLOSE_WITHIN` seconds in all).
Past `LIMIT` held per modem, or still unstored at the daemon's stop, each one dropped is logged
in one line with its PDU (the report's reference, recipient and status, or the SMS, decode from
it) to reconcile by hand.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

from modempool.dispatch.inbound import InboundStore
from modempool.spool.unavailable import log_failure, unavailable

#: Held events per modem at most: some hours of reports at a busy SIM's pace.
LIMIT = 5000
WAIT_FIRST = 1.0
WAIT_MAX = 5.0
#: At the daemon's stop: how long the last attempt to store what is held may take in all.
CLOSE_WITHIN = 5.0


class HeldInbound:
    """One modem's received SMS and reports shown without an index that wait for the spool."""

    def __init__(self, sim: str, store: InboundStore, mlog: logging.Logger) -> None:
        self.sim = sim
        self.store = store
        self.log = mlog
        self.waiting: collections.deque[Any] = collections.deque()
        self._storing: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()   # the daemon stops: no more backoff

    def hold(self, event: Any, why: BaseException | None = None) -> None:
        """Keep `event` (acknowledged to the modem) to store once the earlier ones are stored."""
        if len(self.waiting) >= LIMIT:
            self._dropped(event, f"more than {LIMIT} waiting")
            return
        if not self.waiting and why is not None:
            log_failure(self.log, f"could not store {type(event).__name__} shown without a "
                        "storage index; it is held in memory until the database answers", why)
        self.waiting.append(event)
        if self._storing is None or self._storing.done():
            self._storing = asyncio.create_task(self._store_all(), name=f"{self.sim}:held")

    async def _store_all(self) -> None:
        delay = WAIT_FIRST
        stored = 0
        while self.waiting:
            last_try = self._closing.is_set()   # this attempt began after the stop was asked
            try:
                await self.store.take(self.sim, self.waiting[0])
            except Exception as exc:
                if unavailable(exc) is None:  # a bug, not the database away: never stored
                    self.log.error("storing a held %s failed", type(self.waiting[0]).__name__,
                                   exc_info=exc)
                    self._dropped(self.waiting.popleft(), "it cannot be stored")
                    continue
                if last_try:   # still away at the stop: close() drops the rest, in order
                    break
                # a backoff that the stop cuts short (no synchronisation: nothing to await)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._closing.wait()
                delay = min(delay * 2, WAIT_MAX)
                continue
            self.waiting.popleft()
            stored += 1
            delay = WAIT_FIRST
        if stored:
            self.log.info("the database answers again: %d held SMS and reports stored", stored)

    async def close(self) -> None:
        """The daemon stops: what is held is tried once more, within CLOSE_WITHIN seconds in
        all (the database may answer again by now); what still cannot be stored is dropped, one
        line each (also when the stop itself is cancelled)."""
        self._closing.set()
        try:
            if self.waiting and (self._storing is None or self._storing.done()):
                self._storing = asyncio.create_task(self._store_all(), name=f"{self.sim}:held")
            if self._storing is not None and not self._storing.done():
                await asyncio.wait({self._storing}, timeout=CLOSE_WITHIN)
        finally:
            if self._storing is not None and not self._storing.done():
                self._storing.cancel()   # past the bound: what it was storing counts as dropped
            while self.waiting:
                self._dropped(self.waiting.popleft(), "the daemon stopped before the database "
                              "answered")

    def _dropped(self, event: Any, why: str) -> None:
        self.log.error("%s shown by %s dropped (%s): PDU %s", type(event).__name__, self.sim,
                       why, event.pdu)
