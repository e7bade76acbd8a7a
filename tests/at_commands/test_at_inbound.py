"""Inbound alone: an `Inbound` over a `Channel` (no `Modem`, no background task) against a
simulated modem: notices give slots, reads and sweeps hand a message over once, a delete waits
for the acknowledgement, a released message comes back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from at_commands import InboundSms
from at_commands.core import Urc
from at_commands.inbound import Inbound
from simulator import SimulatedBank

from at_helpers import channel_on, until

SENDER = "+8613912345678"


@contextlib.asynccontextmanager
async def inbound_on(bank: SimulatedBank, events: list[Any],
                     urcs: list[Urc] | None = None) -> AsyncIterator[Inbound]:
    callbacks = {"on_urc": urcs.append} if urcs is not None else {}
    async with channel_on(bank, setup=("pdu_mode",), **callbacks) as channel:
        await channel.execute("select_stores", store="SM")
        inbound = Inbound(channel, events.append)
        await inbound.choose_stores()
        yield inbound


def stored(bank: SimulatedBank) -> int:
    return len(bank.modem("m1").stores["SM"].slots)


async def test_a_sweep_hands_each_message_over_once_and_deletes_only_on_acknowledge(bank) -> None:
    events: list[Any] = []
    async with inbound_on(bank, events) as inbound:
        for text in ("one", "two"):
            await bank.inject(to=bank.modems[0].msisdn, sender=SENDER, text=text)
        await until(lambda: len(bank.modem("m1").stores["SM"].slots) == 2)
        assert await inbound.sweep() == 2
        assert await inbound.sweep() == 0               # handed over already
        assert stored(bank) == 2                  # still on the modem until acknowledged
        for event in events:
            await inbound.acknowledge(event)
        assert stored(bank) == 0
    assert sorted(e.decoded.text for e in events) == ["one", "two"]
    assert all(isinstance(e, InboundSms) and e.store == "SM" for e in events)


async def test_a_released_message_is_handed_over_again_by_the_next_sweep(bank) -> None:
    events: list[Any] = []
    async with inbound_on(bank, events) as inbound:
        await bank.inject(to=bank.modems[0].msisdn, sender=SENDER, text="could not store")
        await until(lambda: bool(bank.modem("m1").stores["SM"].slots))
        assert await inbound.sweep() == 1
        inbound.release(events[0])
        assert await inbound.sweep() == 1
    assert events[0] == events[1]


async def test_a_notice_gives_its_slot_and_the_read_hands_the_message_over(bank) -> None:
    events: list[Any] = []
    urcs: list[Urc] = []
    async with inbound_on(bank, events, urcs) as inbound:
        await inbound.channel.execute(inbound.channel.profile.new_message_routing)
        await bank.inject(to=bank.modems[0].msisdn, sender=SENDER, text="notice")
        await until(lambda: bool(urcs))
        slot = inbound.on_urc(urcs[0])
        assert slot is not None and not events          # a notice is not the message yet
        assert await inbound.read_stored(*slot)
        assert await inbound.read_stored(*slot)         # the same message again: not twice
        assert await inbound.sweep() == 0
    assert len(events) == 1 and (events[0].store, events[0].index) == slot
    assert events[0].decoded.text == "notice"


async def test_a_refused_read_leaves_the_message_for_the_sweep(bank) -> None:
    events: list[Any] = []
    async with inbound_on(bank, events) as inbound:
        await bank.inject(to=bank.modems[0].msisdn, sender=SENDER, text="refused read")
        await until(lambda: bool(bank.modem("m1").stores["SM"].slots))
        [index] = bank.modem("m1").stores["SM"].slots
        assert await inbound.read_stored("SM", index)   # readable as it is
        inbound.release(events.pop())
        bank.set_fault("m1", "command_error", count=1)
        assert not await inbound.read_stored("SM", index)
        assert events == []
        assert await inbound.sweep() == 1
    assert events[0].decoded.text == "refused read"
