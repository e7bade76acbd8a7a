"""Health alone: a `Health` over a `Channel` (no `Modem`) against a simulated modem: the
registration baseline and its changes, signal changes, USSD."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from at_commands import RegistrationChanged, SignalChanged, UssdReply
from at_commands.core import Urc
from at_commands.health import Health
from simulator import SimulatedBank

from at_helpers import channel_on, until


@contextlib.asynccontextmanager
async def health_on(bank: SimulatedBank, events: list[Any],
                    urcs: list[Urc] | None = None) -> AsyncIterator[Health]:
    """A `Health` whose channel hands it the USSD replies (other URCs are kept in `urcs`)."""
    seen = urcs if urcs is not None else []
    health: Health | None = None

    def on_urc(urc: Urc) -> None:
        seen.append(urc)
        if urc.name == "+CUSD" and health is not None:
            health.on_ussd_urc(urc.fields)

    async with channel_on(bank, on_urc=on_urc) as channel:
        health = Health(channel, events.append)
        yield health


async def test_the_baseline_is_no_event_and_a_change_is(bank) -> None:
    events: list[Any] = []
    async with health_on(bank, events) as health:
        await health.start()
        assert health.registration == 1 and events == []
        bank.set_fault("m1", "no_registration")
        await health.poll_registration()
        await health.poll_registration()                # unchanged: no second event
    assert [type(e) for e in events] == [RegistrationChanged]
    assert events[0].status == 2 and not events[0].registered


async def test_registration_urcs_are_read_without_their_n_field(bank) -> None:
    events: list[Any] = []
    urcs: list[Urc] = []
    async with health_on(bank, events, urcs) as health:
        await health.start()                            # AT+CREG=2 on this profile
        bank.set_fault("m1", "no_registration")
        await until(lambda: any(u.name == "+CREG" for u in urcs))
        for urc in urcs:
            health.on_registration_urc(urc.fields)
    assert events and events[-1].status == 2


async def test_signal_is_announced_when_its_bars_change(bank) -> None:
    events: list[Any] = []
    async with health_on(bank, events) as health:
        await health.poll()
        await health.poll()                             # same bars: nothing new
        health.on_signal_urc(("5",))                    # ^RSSI:5, a weak signal
    signals = [e for e in events if isinstance(e, SignalChanged)]
    assert len(signals) == 2 and signals[-1].bars == 1


async def test_ussd_returns_the_text_and_a_late_reply_becomes_an_event(bank) -> None:
    events: list[Any] = []
    async with health_on(bank, events) as health:
        text = await health.ussd("*100#")
        health.on_ussd_urc(("0", "late reply", "15"))   # nobody waits: an event
    assert text.startswith("Your balance is ")
    assert events == [UssdReply("m1", 0, "late reply")]

