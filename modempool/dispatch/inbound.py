"""What comes back from the modems: received SMS and delivery reports.

For each event a modem reports, in this order:
1. store it durably in the spool (a part of a long message waits in `inbound_parts` until its
   siblings arrive, possibly out of order and across restarts);
2. a delivery report is matched to the part and message it belongs to (by SIM, message
   reference and recipient) and moves the message to delivered / failed;
3. once a whole message is stored, the operator hooks (`modempool.operator.hooks`) run, in the
   daemon's inbound lane like the storing (off the event loop on a database server);
4. only then is it acknowledged to the modem, which deletes it from its storage.
A crash between 1 and 4 leaves the SMS on the modem: it is read again and stored once
(parts are unique per sender, reference and number). The database gone between 1 and 3 (or
its role refused a right a hook needs: a GRANT to run): the SMS is stored, so it is
acknowledged, and its hooks (from the one that failed on) wait in a `Backlog`, run in order
once the database answers again (or the GRANT is run; those of later SMS queue behind
them: a 退订 is still recorded before the next message is answered); each hook may run twice
(its writes carry client ids and take the sender's lock), and those still waiting at the
daemon's stop are logged, one line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from modempool.dispatch.backlog import Backlog
from modempool.dispatch.spool_lane import SpoolLane
from modempool.operator.hooks import inbound_handlers
from modempool.operator.optout import field_of
from modempool.spool.unavailable import database_failed, log_failure

log = logging.getLogger("modempool.dispatch.inbound")


class InboundStore:
    """Stores what one or more modems receive, then runs the hooks and acknowledges."""

    def __init__(self, spool: Any, config: Any,
                 handlers: list[Callable[..., Any]] | None = None,
                 lane: SpoolLane | None = None) -> None:
        self.spool = spool
        # The daemon's spool lane: storing runs there, in turn with the dispatcher's writes.
        self.lane = lane or SpoolLane()
        self.config = config
        self.handlers = inbound_handlers(config, self.lane.run) if handlers is None else handlers
        # Called with the SIM's name when a report proves an ambiguous SMS went out: the
        # dispatcher counts it against the SIM's limits as the spool did.
        self.on_proven: Callable[[str], None] | None = None
        # A sender's turn at the hooks (see run_hooks) and how many of its messages are there.
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        # hooks the database went away under: (message, the handlers not yet run), in order
        self.hooks_waiting = Backlog("inbound hooks", self._call_waiting, self._hooks_lost, log,
                                     limit=5000, done_line="the hooks of %d stored SMS run")

    async def handle(self, sim: str, modem: Any, event: Any) -> None:
        """Store one InboundSms / StatusReport event from `modem` (SIM `sim`) and acknowledge it."""
        if await self.take(sim, event):
            await modem.acknowledge(event)

    async def take(self, sim: str, event: Any) -> bool:
        """Store an InboundSms (and run the hooks once its message is whole) or a StatusReport
        (and apply it); False for any other event."""
        from at_commands.events import InboundSms, StatusReport

        if isinstance(event, InboundSms):
            complete = await self.lane.run(self.store_sms, sim, event)
            if complete is not None:
                await self.run_hooks(complete)
        elif isinstance(event, StatusReport):
            match = await self.lane.run(self.match_report, sim, event)
            if match is not None and match.proven and self.on_proven is not None:
                self.on_proven(sim)
        else:
            return False
        return True

    def store_sms(self, sim: str, event: Any) -> Any | None:
        """Store a received part; returns the inbound row when a whole message is now complete."""
        decoded = event.decoded
        if decoded is None:
            # Kept (as hex, marked incomplete) for a human; no hook should act on it.
            log.warning("%s: could not decode a received PDU, kept as-is: %s", sim, event.pdu)
            self.spool.store_inbound("", event.pdu, sim=sim, received_at=_now(), parts=1,
                                     complete=False)
            return None
        sender = getattr(decoded, "sender", "") or ""
        received_at = getattr(decoded, "timestamp", None) or _now()
        text = decoded.text if isinstance(decoded.text, str) else bytes(decoded.text).hex()
        concat = getattr(decoded, "concat", None)
        if concat is None or concat.total <= 1:
            row = self.spool.store_inbound(sender, text, sim=sim, received_at=received_at)
        else:
            row = self.spool.store_inbound_part(sim, sender, concat.reference, concat.total,
                                                concat.seq, text, received_at=received_at)
        if row is not None:
            log.info("%s: SMS from %s stored (%s)", sim, sender, _short(row.text))
        return row

    def match_report(self, sim: str, event: Any) -> Any:
        """Store a delivery report and match it to its part/message (the spool's match; None
        when it cannot be decoded). Safe in the lane's thread: it touches no SIM state."""
        report = event.decoded
        if report is None:
            log.warning("%s: could not decode a status report: %s", sim, event.pdu)
            return None
        match = self.spool.store_delivery_report(
            sim, report.message_reference, getattr(report, "recipient", None), report.status,
            received_at=getattr(report, "discharge_time", None) or _now(),
            submitted_at=getattr(report, "scts", None))
        # The steady state logs one INFO line per message sent; a report is DEBUG unless it
        # settles an ambiguous message.
        log.log(logging.INFO if match.proven else logging.DEBUG,
                "%s: delivery report for reference %s (status %s): message %s%s", sim,
                report.message_reference, report.status, match.message_id,
                " (it settles that ambiguous message: the network took it)"
                if match.proven else "")
        return match

    async def flush_incomplete(self, older_than: timedelta) -> int:
        """Store long SMS whose missing parts never came as incomplete messages; run the hooks."""
        flushed = await self.lane.run(self.spool.flush_inbound_parts, older_than)
        for message in flushed:
            log.warning("%s: SMS from %s stored incomplete (%d parts expected)", message.sim,
                        message.sender, message.parts)
            await self.run_hooks(message)
        return len(flushed)

    async def run_hooks(self, inbound: Any) -> None:
        """Call each operator handler in the lane (its spool calls never hold up the loop);
        what a handler returns, if awaitable, is awaited on the loop (where it may start
        tasks). A failing handler is logged and never stops the pool.

        The lane has several threads, so one sender's messages (two SIMs, a second apart)
        take turns, in the order they were stored: a 退订 is recorded before the next
        message from that sender is answered. Whether hooks wait for the database is
        checked within the turn, and the waiting ones take the turn too: a message that
        waited for the turn while the one before it failed goes behind it."""
        async with self._turn(inbound):
            if self.hooks_waiting.waiting:   # behind those the database went away under
                self.hooks_waiting.add((inbound, list(self.handlers)))
                return
            await self._call_handlers(inbound)

    @contextlib.asynccontextmanager
    async def _turn(self, inbound: Any) -> AsyncIterator[None]:
        """The sender's turn at the hooks, kept while anyone waits for it."""
        sender = str(field_of(inbound, "sender", "") or "")
        turn, waiting = self._turns.get(sender) or (asyncio.Lock(), 0)
        self._turns[sender] = (turn, waiting + 1)
        try:
            async with turn:
                yield
        finally:
            turn, waiting = self._turns[sender]
            if waiting == 1:
                del self._turns[sender]
            else:
                self._turns[sender] = (turn, waiting - 1)

    async def _call_handlers(self, inbound: Any) -> None:
        for index, handler in enumerate(self.handlers):
            try:
                await self._call(handler, inbound)
            except Exception as exc:
                if not database_failed(exc):
                    _failed(handler, inbound, exc)
                    continue
                log_failure(log, "the hooks of a stored SMS wait for the database", exc)
                self.hooks_waiting.add((inbound, self.handlers[index:]))
                return

    async def _call(self, handler: Callable[..., Any], inbound: Any) -> None:
        result = await self.lane.run(handler, self.spool, inbound, self.config)
        if inspect.isawaitable(result):
            await result

    async def _call_waiting(self, item: tuple[Any, list[Callable[..., Any]]]) -> None:
        """The hooks of a message that waited, from the first not yet run, in its sender's
        turn; one that fails with the database away again is where the next try starts."""
        inbound, handlers = item
        async with self._turn(inbound):
            while handlers:
                try:
                    await self._call(handlers[0], inbound)
                except Exception as exc:
                    if database_failed(exc):
                        raise
                    _failed(handlers[0], inbound, exc)
                handlers.pop(0)

    @staticmethod
    def _hooks_lost(item: tuple[Any, list[Callable[..., Any]]], why: str) -> None:
        inbound, handlers = item
        log.error("the hooks of inbound SMS %s from %s did not run (%s): %s",
                  field_of(inbound, "id"), field_of(inbound, "sender", ""), why,
                  ", ".join(getattr(h, "__name__", repr(h)) for h in handlers))

    async def close(self) -> None:
        """The daemon stops: hooks still waiting for the database are tried once more, then
        logged (see the module)."""
        await self.hooks_waiting.close()


def _failed(handler: Callable[..., Any], inbound: Any, exc: Exception) -> None:
    """A handler failed otherwise than for the database away: a library error in one line, a
    bug with its traceback; the next handler runs."""
    name = getattr(handler, "__name__", repr(handler))
    log_failure(log, f"inbound handler {name} failed for SMS {field_of(inbound, 'id')} from "
                     f"{field_of(inbound, 'sender', '')}", exc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
