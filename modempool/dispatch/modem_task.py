"""One modem's life in the daemon: open, initialise, identify, take its card (or stand by),
serve (send what the dispatcher hands it; what it reports meanwhile, SMS received among it, is
`modem_events.py`'s), quarantine, reopen with backoff; until the daemon stops."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from modempool.box.ports import PortBusy, PortLock
from modempool.config import ModemConfig
from modempool.dispatch import limits as limits_mod
from modempool.dispatch.card_reask import ask_until_imsi, say_iccid_alone
from modempool.dispatch.cards import CardElsewhere, card_keys
from modempool.dispatch.held_inbound import HeldInbound
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.modem_events import inbound_only, pump_events
from modempool.dispatch.sending import ModemTrouble
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.spool.model import CardLost
from modempool.spool.unavailable import database_failed, log_failure

log = logging.getLogger("modempool.dispatch.daemon")


#: How many times a modem that reads neither its card's ICCID nor its IMSI is asked again, a
#: heartbeat apart, before it serves unchecked (`_read_card`).
IDENTIFY_TRIES = 3


class Quarantine(Exception):
    """Take this SIM out of rotation for a while."""


class ModemTaskMixin:
    """The per-modem tasks of `Daemon` (mixed into it)."""

    async def _modem_task(self, spec: ModemConfig, slot: SimSlot, inbound: InboundStore) -> None:
        """One modem for the daemon's life: its port owned, then served (`_run_modem`); at the
        stop what it holds unstored is stored or logged (`HeldInbound.close`)."""
        from at_commands import Modem, Timing
        from modempool.dispatch.pins import SpoolPinMemory

        mlog = logging.getLogger(f"modempool.modem.{spec.name}")
        # One driver object for the life of the daemon: it remembers a refused PIN and never
        # enters it again (a wrong PIN tried at every reconnect would lock the SIM).
        answer_wait, timeouts = self.config.timing.of(spec)   # [timing], [[modem]]
        modem = Modem(spec.port, name=spec.name, pin=spec.pin, profile=spec.profile,
                      baudrate=spec.baudrate, pin_memory=SpoolPinMemory(self.spool, spec.name, self.books),
                      timing=Timing(answer_wait, timeouts))
        # The daemon owns the port for its whole life (also while quarantined or reconnecting):
        # the UUCP lock tells minicom, cu and a second modempool to stay away.
        lock = PortLock(spec.port, self.config.lock_dir)
        if self.desk is not None:
            self.desk.modems[spec.name] = modem  # USSD asked by `modempool ussd` runs on it
        held = HeldInbound(spec.name, inbound, mlog)  # kept across reconnects of the modem
        try:
            await self._run_modem(spec, slot, modem, lock, held, inbound, mlog)
        finally:   # also when the modem tasks are cancelled: each held event stored or logged
            lock.release()
            await held.close()
        self._update_sim(spec, slot, SimState.STOPPED)

    async def _run_modem(self, spec: ModemConfig, slot: SimSlot, modem: Any, lock: PortLock,
                         held: HeldInbound, inbound: InboundStore, mlog: logging.Logger) -> None:
        """Open, serve, quarantine and re-probe one modem until the daemon stops."""
        from at_commands import AtError, ModemState, PinError

        backoff = 1.0
        while not self._stop.is_set():
            try:
                lock.own(mlog)
                await modem.open()
                await modem.initialise()
                self._tune(modem)
                info = await modem.identify()
                if not info.registered:
                    raise Quarantine(f"not registered ({info.registration_text or 'no network'})")
                slot.operator = info.operator or ""
                slot.errors_in_row = 0
                backoff = 1.0
                await self._serve(spec, slot, modem, info, inbound, held, mlog)
            except (CardElsewhere, CardLost) as exc:   # taken over while it served
                mlog.warning("stops sending: %s", exc)
                self._update_sim(spec, slot, SimState.STANDBY, error=str(exc))  # out of rotation
            except (Quarantine, PinError) as exc:
                until = datetime.now(timezone.utc) + timedelta(seconds=self.policy.quarantine_seconds)
                if modem.state is ModemState.LOCKED:  # a refused PIN or a PUK: not by waiting
                    mlog.error("%s", exc)
                    self._update_sim(spec, slot, SimState.LOCKED, error=str(exc))
                else:
                    mlog.warning("quarantined until %s: %s", until.strftime("%H:%M:%S"), exc)
                    self._update_sim(spec, slot, SimState.QUARANTINED, error=str(exc),
                                     until=until)
                await self._give_back(slot)  # what it holds goes to another SIM now, not after
                await _close(modem)
                await self._sleep(self.policy.quarantine_seconds)
            except Exception as exc:
                why = str(exc) or type(exc).__name__
                if (not isinstance(exc, (AtError, OSError, ModemTrouble, PortBusy))
                        and not database_failed(exc)):  # a bug: say where (a GRANT is named)
                    mlog.exception("unexpected error; the other modems carry on")
                mlog.warning("down (%s); reopening in %.0f s", why, backoff)
                self._update_sim(spec, slot, SimState.DOWN, error=why)
                await self._give_back(slot)
                await _close(modem)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                await self._give_back(slot)
                await _close(modem)
                await self.cards.let_go(spec.name)   # after what it held went back

    async def _read_card(self, spec: ModemConfig, slot: SimSlot, modem: Any, info: Any,
                         trouble: asyncio.Event, mlog: logging.Logger) -> Any | None:
        """`info`, or the modem's identity asked again, once it reads its card's IMSI (AT+CIMI,
        which every modem answers once the SIM is ready). A modem that reads no IMSI (the
        command answering ERROR: a SIM still busy after its PIN, say) stands by and is asked
        again every heartbeat, `IDENTIFY_TRIES` times, before it serves with what it read (its
        ICCID, or unchecked): a moment's ERROR must not leave a clone of its card unseen for
        the whole session, nor let a modem that read only the ICCID and one that read only
        the IMSI (no ICCID command) hold one card each under a key of their own. None: the
        daemon stopped, or the modem failed, meanwhile."""
        for tries in range(IDENTIFY_TRIES):
            if info.imsi:
                return info
            if tries == 0:
                note = ("reads no IMSI of its SIM card (yet)" if info.iccid else
                        "reads neither the ICCID nor the IMSI of its SIM card (yet)")
                mlog.warning("sends nothing: %s; asking again every %g s", note, self.beat_every)
                self._update_sim(spec, slot, SimState.STANDBY, info=info, error=note)
            await _first(self._sleep(self.beat_every), trouble.wait())
            if self._stop.is_set() or trouble.is_set():
                return None
            info = await modem.identify()
            if card_keys(info.iccid, info.imsi):   # its card in its row before its counts
                await self._name_card(spec, slot, info, mlog)
        return info

    async def _await_card(self, spec: ModemConfig, slot: SimSlot, info: Any,
                          trouble: asyncio.Event, mlog: logging.Logger) -> asyncio.Event | None:
        """Take the card in the modem (by ICCID) and read its counts before the modem sends:
        returns the event set if another daemon takes the card over later. While another live
        daemon or modem serves the card, or the database cannot take it or read its counts
        (an outage, not the modem's failure), stand by: say so once (log and `status`; the
        slot leaves STARTING, so that the daemon tells systemd it is ready), and ask again
        every heartbeat. A card taken whose counts cannot be read is let go: a modem never
        sends on counts that are not its card's. None: the daemon stopped, or the modem failed
        (`trouble`), meanwhile. The card is named by its ICCID and its IMSI (`card_keys`); a
        modem that reads neither cannot be told apart: it takes no card (an event never set),
        its row forgets the card it named before (its counts are the modem's own from then on)
        and it says so, but its counts are read all the same. One that reads its ICCID and no
        IMSI takes the IMSIs the spool knows for that ICCID too (`Sims.card_imsis`)."""
        assert self.dispatcher is not None  # made before the modem tasks
        card = card_keys(info.iccid, info.imsi)
        alone = bool(info.iccid and not info.imsi)   # its known IMSIs still to be looked up
        if not card:
            mlog.warning("reads neither ICCID nor IMSI: a clone of its SIM card elsewhere "
                         "cannot be told apart; it serves unchecked")
        said = ""
        while not self._stop.is_set() and not trouble.is_set():
            try:
                if alone:
                    card = card_keys(info.iccid, None, await self.dispatcher.lane.run(
                        self.spool.sims.card_imsis, info.iccid))
                    alone = False
                    say_iccid_alone(card, IDENTIFY_TRIES, mlog)
                if card:
                    lost = await self.cards.take(spec.name, card, slot.owner)
                else:   # the row forgets the card it named: this one may be another
                    await self.dispatcher.lane.run(self.spool.name_sim_card, spec.name,
                                                   None, None, forget=True)
                    self.cards.serve_without_card(slot.owner)
                    lost = asyncio.Event()
            except CardElsewhere as exc:
                note = str(exc)
            except Exception as exc:
                if not database_failed(exc):
                    raise
                note = "waiting for the database to take its SIM card"
                log_failure(mlog, "could not take its SIM card; asking again", exc)
            else:
                try:
                    await self._learn_card(spec, slot, info)
                    return lost
                except Exception as exc:
                    if not database_failed(exc):
                        raise
                    await self.cards.let_go(spec.name)
                    note = "waiting for the database to read the counts of its SIM card"
                    log_failure(mlog, "could not read the counts of its SIM card; let it go, "
                                "asking again", exc)
            if note != said:
                said = note
                mlog.warning("sends nothing: %s; asking again every %g s", note, self.beat_every)
                self._update_sim(spec, slot, SimState.STANDBY, info=info, error=note)
            await _first(self._sleep(self.beat_every), trouble.wait())
        return None

    async def _learn_card(self, spec: ModemConfig, slot: SimSlot, info: Any) -> None:
        """Before the SIM goes into rotation: record the ICCID of the card in it, and take
        on what the spool counts for that card today and this month, from whichever modem or
        host it sent (a card moved between boxes keeps its quota). Raises what the database
        raised: without its counts the card does not send."""
        def stored() -> Any:
            if info.iccid:
                self.spool.upsert_sim(spec.name, iccid=info.iccid)
            return self._stored_counters(spec.name)

        assert self.dispatcher is not None  # made before the modem tasks
        counts = await self.dispatcher.lane.run(stored)
        slot.counters = limits_mod.at_least(slot.counters, counts,
                                            datetime.now(self.config.tz or timezone.utc))

    async def _give_back(self, slot: SimSlot) -> None:
        """Messages handed to `slot` and not begun go back to the queue for the other SIMs."""
        if self.dispatcher is not None:
            await self.dispatcher.release_unstarted(slot)

    def _tune(self, modem: Any) -> None:
        """The pool's send timeout becomes the driver's wait for +CMGS after the PDU."""
        timeouts = dict(modem.profile.timeouts)
        timeouts["send_result"] = self.policy.send_timeout
        modem.profile = dataclasses.replace(modem.profile, timeouts=timeouts)

    async def _serve(self, spec: ModemConfig, slot: SimSlot, modem: Any, info: Any,
                     inbound: InboundStore, held: HeldInbound, mlog: logging.Logger) -> None:
        """Store what the modem receives from now on, also while it stands by for its card
        (`_await_card`); once the card is its own, send too. Until the daemon stops, the
        driver gives up, or the card is taken over by another daemon (`lost`: its message on
        the air finishes first)."""
        if not await self._name_card(spec, slot, info, mlog):
            return   # the daemon stops
        trouble = asyncio.Event()
        serving = asyncio.Event()   # in rotation: a reconnected modem is UP again
        early = inbound_only(modem)  # drop news of an earlier connection, keep SMS
        tasks = [asyncio.create_task(pump_events(
            spec.name, slot, modem, inbound, held, trouble, early, serving,
            set_state=lambda state: self._update_sim(spec, slot, state), retune=self._tune,
            signal=lambda dbm: self.sim_states.signal(spec.name, dbm)),
            name=f"{spec.name}:events")]
        lost = None
        reask: asyncio.Task[str | None] | None = None
        try:
            info = await self._read_card(spec, slot, modem, info, trouble, mlog)
            if info is not None:
                lost = await self._await_card(spec, slot, info, trouble, mlog)
            if lost is not None:
                serving.set()
                self._update_sim(spec, slot, SimState.UP, info=info)
                if self.balance is not None:
                    self.balance.wake.set()  # a SIM that comes up: its balance, if due
                mlog.info("up: %s %s, operator %s, signal %s dBm, number %s",
                          info.manufacturer or "", info.model or "", info.operator,
                          info.signal_dbm, info.msisdn or "?")
                tasks.append(asyncio.create_task(_set_when(lost, trouble),
                                                 name=f"{spec.name}:card"))
                if not info.imsi:   # served by its ICCID alone, or unchecked
                    reask = asyncio.create_task(
                        self._ask_card_again(spec, slot, modem, info, lost, trouble, mlog),
                        name=f"{spec.name}:card-keys")
                    tasks.append(reask)
                await self._send_loop(slot, modem, trouble)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if lost is not None and lost.is_set() and not self._stop.is_set():
            raise CardElsewhere(self.cards.why_lost(spec.name))
        failed = reask.result() if reask is not None and not reask.cancelled() else None
        if failed and not self._stop.is_set():   # said by the task already
            raise ModemTrouble(failed)
        if trouble.is_set() and not self._stop.is_set():
            raise ModemTrouble("the driver gave up reconnecting")

    async def _ask_card_again(self, spec: ModemConfig, slot: SimSlot, modem: Any, info: Any,
                              lost: asyncio.Event, trouble: asyncio.Event,
                              mlog: logging.Logger) -> str | None:
        """While a modem serves without its card's IMSI: ask it again (`card_reask`); once it
        reads it, take the card by it and read its counts again (`_learn_card`). Why it ended
        the session, if a bug did. Its card is recorded without `_name_card`'s stand-by: the
        modem serves meanwhile, and a database failure there is asked again later."""
        assert self.dispatcher is not None  # made before the modem tasks
        lane = self.dispatcher.lane

        async def name_card(again: Any) -> None:
            await lane.run(self.spool.name_sim_card, spec.name, again.iccid, again.imsi)

        async def imsis_of(iccid: str) -> list[str]:
            return await lane.run(self.spool.sims.card_imsis, iccid)

        async def learn(again: Any) -> None:
            await self._learn_card(spec, slot, again)

        async def take(keys: list[str]) -> bool:
            return await self.cards.complete(spec.name, keys, slot.owner, lost)

        return await ask_until_imsi(
            modem, info, lost, trouble, every=self.beat_every, sleep=self._sleep,
            name_card=name_card, take=take, learn=learn,
            give_up=lambda why: self.cards.give_up(spec.name, why, lost),
            stopped=self._stop.is_set, mlog=mlog, imsis_of=imsis_of)

    async def _name_card(self, spec: ModemConfig, slot: SimSlot, info: Any,
                         mlog: logging.Logger) -> bool:
        """Write the card read from the modem into its `sims` row before anything it received
        is stored: received SMS are deduplicated by the card that row names, so an SMS left on
        a card that moved here (stored already in the box it came from) is found stored, not
        stored again under the card that was in this modem before; a key it failed to read
        does not erase the one the row knows (`Sims.name_card`). On a database failure ask
        again every heartbeat, standing by (what the modem holds stays on it meanwhile).
        False: the daemon stopped."""
        assert self.dispatcher is not None  # made before the modem tasks
        said = False
        while not self._stop.is_set():
            try:
                await self.dispatcher.lane.run(self.spool.name_sim_card, spec.name,
                                               info.iccid, info.imsi)
                return True
            except Exception as exc:
                if not database_failed(exc):
                    raise
                if not said:
                    said = True
                    note = "waiting for the database to record its SIM card"
                    log_failure(mlog, "could not record its SIM card; nothing it received is "
                                "stored until it can; asking again", exc)
                    self._update_sim(spec, slot, SimState.STANDBY, info=info, error=note)
            await self._sleep(self.beat_every)
        return False

    async def _send_loop(self, slot: SimSlot, modem: Any, trouble: asyncio.Event) -> None:
        assert self.dispatcher is not None
        loop = asyncio.get_running_loop()
        while not self._stop.is_set() and not trouble.is_set():
            pause = slot.pace_wait(loop.time())
            if pause > 0:  # the per-minute pace: spread out, not a burst at the minute's start
                await _first(asyncio.sleep(pause), self._stop.wait(), trouble.wait())
                continue
            if slot.inbox.empty():
                message = await _first(slot.inbox.get(), self._stop.wait(), trouble.wait())
                if message is None:
                    return
            else:  # the next one was claimed while the last was on the air
                message = slot.inbox.get_nowait()
            slot.paced(loop.time(), self.dispatcher.parts_needed(message))
            try:
                await self.dispatcher.send_message(slot, modem, message)
            finally:
                self.dispatcher.done(slot, message)
            if slot.errors_in_row >= self.policy.quarantine_after:
                raise Quarantine(f"{slot.errors_in_row} failed sends in a row "
                                 f"(last: {slot.last_failure})")

    def _update_sim(self, spec: ModemConfig, slot: SimSlot, state: SimState, *, info: Any = None,
                    error: str | None = None, until: datetime | None = None) -> None:
        """The SIM's new state, recorded (`sim_states.py`); the dispatcher looks again."""
        self.sim_states.update(spec, slot, state, info=info, error=error, until=until)
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

async def _set_when(first: asyncio.Event, then: asyncio.Event) -> None:
    await first.wait()
    then.set()


async def _first(*awaitables: Any) -> Any:
    """The result of the first awaitable to finish (the others are cancelled); None if not the first."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    if tasks[0] in done:
        return tasks[0].result()
    return None


async def _close(modem: Any) -> None:
    with contextlib.suppress(Exception):
        await modem.close()
