"""What comes back from the modems: received SMS and delivery reports.

For each event a modem reports, in this order:
1. store it durably in the spool (a part of a long message waits in `inbound_parts` until its
   siblings arrive, possibly out of order and across restarts); a whole message is stored
   with its operator hooks (`modempool.operator.hooks`) marked pending, in the same
   transaction (`spool/inbound_hooks.py`);
2. a delivery report is matched to the part and message it belongs to (by SIM, message
   reference and recipient) and moves the message to delivered / failed;
3. once a whole message is stored, the hooks run, in the daemon's inbound lane like the
   storing (off the event loop on a database server), in one transaction that also passes
   them in the message's row: a hook whose writes committed is never run again;
4. only then is it acknowledged to the modem, which deletes it from its storage.
A crash between 1 and 4 leaves the SMS on the modem: it is read again and stored once
(parts are unique per sender, reference and number), and its hooks still pending are in the
spool. The database gone at 3 (or its role refused a right a hook needs: a GRANT to run):
the SMS is stored, so it is acknowledged, and its hooks stay pending in the spool; that
sender's later SMS wait behind it there, other senders' go on. `keep_up` runs what waits, in
each sender's order, once the database answers (or the GRANT is run), and at the start what a
killed or stopped run of the daemon left (on a shared database: what a dead daemon left).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from modempool.dispatch.hook_runner import HookRunner
from modempool.dispatch.liveness import new_run_owner
from modempool.dispatch.spool_lane import SpoolLane
from modempool.operator.hooks import InboundCommand, inbound_command, inbound_handlers
from modempool.part_call import PartCall

log = logging.getLogger("modempool.dispatch.inbound")

#: Seconds a delivery report waits, at most, for a quiet moment (no modem between its answer
#: and its next PDU: `Dispatcher.quiet_moment`, as claims ahead wait) before it is stored. When
#: modems answer together (every second at a fixed time per SMS) each waits for its part
#: marker; a report stored meanwhile takes the processors, the interpreter's lock and the
#: server from them, for no one waiting on it (nothing goes out the sooner for it). Bounded:
#: the modem's event pump waits with it, and on a modem under AT+CSMS=1 its AT+CNMA, which
#: the modem awaits for seconds.
REPORT_WAITS_AT_MOST = 0.1


class InboundStore:
    """Stores what one or more modems receive, then runs the hooks (its part `hooks`,
    hook_runner.py) and acknowledges."""

    def __init__(self, spool: Any, config: Any,
                 handlers: list[Callable[..., Any]] | None = None,
                 lane: SpoolLane | None = None, *, owner: str | None = None,
                 dead: Callable[[list[str]], list[str]] | None = None,
                 command: InboundCommand | None = None) -> None:
        self.spool = spool
        # The daemon's spool lane: storing runs there, in turn with the dispatcher's writes.
        self.lane = lane or SpoolLane()
        self.config = config
        # The handlers, then the forward command as a step of its own (the config's where no
        # handlers are given): pending until its final outcome is recorded.
        if handlers is None:
            handlers = inbound_handlers(config, self.lane.run, command=False)
            command = inbound_command(config, self.lane.run)
        # The daemon run whose hooks these are (a run of its own where none is given), and
        # which other runs' pending hooks it may take: `dead(owners)`, by default every other
        # (one daemon per SQLite spool); on a shared database those judged dead.
        self.owner = owner or new_run_owner()
        self.hooks = HookRunner(spool, self.lane, config, handlers, self.owner, command,
                                dead or (lambda owners: owners))
        # Called with the SIM's name when a report proves an ambiguous SMS went out: the
        # dispatcher counts it against the SIM's limits as the spool did.
        self.on_proven: Callable[[str], None] | None = None
        # The first key of the card hold of the modem named (`CardsServed.card_of`; None: it
        # holds none), stored with each report it hears (`spool.report_cards`).
        self.card_of: Callable[[str], str | None] = lambda sim: None
        # The dispatcher's `quiet_moment`: a delivery report is stored once no modem is between
        # its answer and its next PDU (at most REPORT_WAITS_AT_MOST later).
        self.quiet_moment: Callable[[float], Awaitable[None]] | None = None

    handlers = PartCall("hooks", "handlers")
    command_step = PartCall("hooks", "command_step")
    behind = PartCall("hooks", "behind")
    wake = PartCall("hooks", "wake")
    run_hooks = PartCall("hooks", "run_hooks")
    take_over = PartCall("hooks", "take_over")
    catch_up = PartCall("hooks", "catch_up")
    keep_up = PartCall("hooks", "keep_up")
    close = PartCall("hooks", "close")

    async def handle(self, sim: str, modem: Any, event: Any) -> None:
        """Store one InboundSms / StatusReport event from `modem` (SIM `sim`) and acknowledge it."""
        if await self.take(sim, event):
            await modem.acknowledge(event)

    async def take(self, sim: str, event: Any) -> bool:
        """Store an InboundSms (and run the hooks once its message is whole) or a StatusReport
        (and apply it), heard by `sim` now; False for any other event."""
        return await self.take_heard(sim, event, self.card_of(sim))

    async def take_heard(self, sim: str, event: Any, card: str | None) -> bool:
        """`take`, for an event heard earlier, while `sim` held `card` (the key of its hold
        then: a held event is stored later)."""
        from at_commands.events import InboundSms, StatusReport

        if isinstance(event, InboundSms):
            complete = await self.lane.run(self.store_sms, sim, event)
            if complete is not None:
                await self.run_hooks(complete)
        elif isinstance(event, StatusReport):
            if self.quiet_moment is not None:
                await self.quiet_moment(REPORT_WAITS_AT_MOST)
            match = await self.lane.run(self.match_report, sim, event, card)
            if match is not None and match.proven and self.on_proven is not None:
                self.on_proven(sim)
        else:
            return False
        return True

    def store_sms(self, sim: str, event: Any) -> Any | None:
        """Store a received part; returns the inbound row when a whole message is now complete
        (or is found stored with its hooks still to run: see `Inbound._insert`)."""
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
            row = self.spool.store_inbound(sender, text, sim=sim, received_at=received_at,
                                           hooks_by=self.owner)
        else:
            row = self.spool.store_inbound_part(sim, sender, concat.reference, concat.total,
                                                concat.seq, text, received_at=received_at,
                                                hooks_by=self.owner)
        if row is not None:
            log.info("%s: SMS from %s stored (%s)", sim, sender, _short(row.text))
        return row

    def match_report(self, sim: str, event: Any, card: str | None = None) -> Any:
        """Store a delivery report heard by `sim` holding `card` and match it to its
        part/message (the spool's match; None when it cannot be decoded). Safe in the lane's
        thread: it touches no SIM state."""
        report = event.decoded
        if report is None:
            log.warning("%s: could not decode a status report: %s", sim, event.pdu)
            return None
        match = self.spool.store_delivery_report(
            sim, report.message_reference, getattr(report, "recipient", None), report.status,
            received_at=getattr(report, "discharge_time", None) or _now(),
            submitted_at=getattr(report, "scts", None), card=card)
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
        flushed = await self.lane.run(self.spool.flush_inbound_parts, older_than,
                                      hooks_by=self.owner)
        for message in flushed:
            log.warning("%s: SMS from %s stored incomplete (%d parts expected)", message.sim,
                        message.sender, message.parts)
            await self.run_hooks(message)
        return len(flushed)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
