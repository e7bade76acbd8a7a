"""What a modem reports while it is served: what it receives, its downs and ups, its signal.

`pump_events` runs as one task per modem beside its send loop (`modem_task.py`). Received SMS
and status reports are stored (`InboundStore.take`), then acknowledged; one the spool cannot
take is held in memory if it was only shown, or left on the modem for its next sweep
(`HeldInbound`). The rest is news for the daemon, passed to it by the callbacks it gives: the
SIM's state (down, back up, back standing by), the driver to tune again, the signal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from modempool.dispatch.held_inbound import HeldInbound
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.spool.unavailable import log_failure


async def pump_events(name: str, slot: SimSlot, modem: Any, inbound: InboundStore,
                      held: HeldInbound, trouble: asyncio.Event, early: list[Any],
                      serving: asyncio.Event, *, set_state: Callable[[SimState], None],
                      retune: Callable[[Any], None], signal: Callable[[Any], None]) -> None:
    """Handle the events of modem `name` (those kept from before, `early`, first) until the
    driver gives up reconnecting (`trouble` set) or the task is cancelled. `serving`: the
    modem is in rotation (it comes back UP, else back standing by for its card)."""
    from at_commands import events as ev

    mlog = logging.getLogger(f"modempool.modem.{name}")
    async for event in _chain(early, modem.events()):
        if isinstance(event, (ev.InboundSms, ev.StatusReport)):
            if event.index is None and held.waiting:  # after those held before it
                held.hold(event)
                await _acknowledge(modem, event, mlog)
                continue
            try:
                await inbound.take(name, event)
            except Exception as exc:
                if event.index is None:  # shown, not kept on the modem: held in memory
                    held.hold(event, exc)
                    await _acknowledge(modem, event, mlog)
                else:
                    modem.release(event)
                    held.left_on_modem(modem)
                    log_failure(mlog, f"could not store {type(event).__name__}; it stays on "
                                "the modem for the next sweep", exc)
                continue
            await _acknowledge(modem, event, mlog)
        elif isinstance(event, (ev.Disconnected, ev.Unresponsive)):
            slot.state = SimState.DOWN
            mlog.warning("%s", getattr(event, "reason", None) or "not answering")
            set_state(SimState.DOWN)
        elif isinstance(event, (ev.Reconnected, ev.Responsive)):
            retune(modem)
            # standing by for its card: still not in rotation (its note kept in `status`)
            set_state(SimState.UP if serving.is_set() else SimState.STANDBY)
            mlog.info("back up" if serving.is_set() else "back (standing by)")
        elif isinstance(event, ev.ReconnectFailed):
            slot.state = SimState.DOWN
            trouble.set()
            return
        elif isinstance(event, ev.SignalChanged):
            signal(event.dbm)


def inbound_only(modem: Any) -> list[Any]:
    """Take the events waiting in the driver, keeping only received SMS and reports (news of
    an earlier connection is dropped)."""
    from at_commands.events import InboundSms, StatusReport

    kept = []
    while (event := modem.event_nowait()) is not None:
        if isinstance(event, (InboundSms, StatusReport)):
            kept.append(event)
    return kept


async def _chain(first: list[Any], rest: Any) -> AsyncIterator[Any]:
    for event in first:
        yield event
    async for event in rest:
        yield event


async def _acknowledge(modem: Any, event: Any, mlog: logging.Logger) -> None:
    """Tell the modem `event` is ours (delete it, or AT+CNMA); refused, it stays on the modem
    and the next sweep hands it over again (stored once: the spool deduplicates)."""
    try:
        await modem.acknowledge(event)
    except Exception as exc:  # noqa: BLE001 - the modem's trouble shows in its own events
        modem.release(event)
        mlog.warning("could not acknowledge %s (%s); the next sweep hands it over again",
                     type(event).__name__, exc)
