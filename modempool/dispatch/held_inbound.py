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
kept here (a `Backlog`): lost only if the daemon stops (or dies) before the database is back.
At the stop the backoff is cut short and what is held is tried once more (`backlog.CLOSE_WITHIN`
seconds in all).
Past `LIMIT` held per modem, or still unstored at the daemon's stop, each one dropped is logged
in one line with its PDU (the report's reference, recipient and status, or the SMS, decode from
it) to reconcile by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from modempool.dispatch.backlog import Backlog
from modempool.dispatch.inbound import InboundStore
from modempool.spool.unavailable import log_failure

#: Held events per modem at most: some hours of reports at a busy SIM's pace.
LIMIT = 5000


class HeldInbound:
    """One modem's received SMS and reports shown without an index that wait for the spool."""

    def __init__(self, sim: str, store: InboundStore, mlog: logging.Logger) -> None:
        self.sim = sim
        self.log = mlog
        self.store = store
        # each event with the card its modem held when it was heard (`InboundStore.card_of`)
        self.backlog = Backlog(f"{sim}:held", lambda held: store.take_heard(sim, *held),
                               self._dropped, mlog, limit=LIMIT,
                               done_line="%d held SMS and reports stored")
        # one sweep of the modem once the spool takes writes again (see `left_on_modem`)
        self.sweep = Backlog(f"{sim}:sweep", self._sweep_when_writable, lambda *_: None, mlog,
                             limit=1, done_line="the modem swept for what it kept (%d)")

    @property
    def waiting(self) -> list[Any]:
        """The events held, oldest first."""
        return [event for event, _card in self.backlog.waiting]

    def hold(self, event: Any, why: BaseException | None = None) -> None:
        """Keep `event` (acknowledged to the modem) to store once the earlier ones are stored."""
        if not self.backlog.waiting and why is not None:
            log_failure(self.log, f"could not store {type(event).__name__} shown without a "
                        "storage index; it is held in memory until the database answers", why)
        self.backlog.add((event, self.store.card_of(self.sim)))

    def left_on_modem(self, modem: Any) -> None:
        """An SMS or report the modem keeps (it has a storage index) could not be stored and
        was released: once the spool takes writes again, one sweep of the modem hands it over
        at once, not at the next periodic sweep (a minute or more later)."""
        if not self.sweep.waiting:
            self.sweep.add(modem)

    async def _sweep_when_writable(self, modem: Any) -> None:
        await self.store.lane.run(self.store.spool.check_writable)   # SpoolUnavailable: later
        try:
            await modem.sweep()
        except Exception as exc:  # noqa: BLE001 - the modem's trouble shows in its own events
            self.log.info("sweep for what the modem kept: %s", exc)

    async def close(self) -> None:
        """The daemon stops: what is held is tried once more; what still cannot be stored is
        dropped, one line each (what the modem keeps stays there for the next run)."""
        self.sweep.waiting.clear()   # nothing to sweep for at a stop: the modem keeps it
        await self.sweep.close()
        await self.backlog.close()

    def _dropped(self, held: tuple[Any, str | None], why: str) -> None:
        event = held[0]
        self.log.error("%s shown by %s dropped (%s): PDU %s", type(event).__name__, self.sim,
                       why, event.pdu)
