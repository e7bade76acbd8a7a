"""The command channel alone (no `Modem` around it) against a simulated modem on a real pty:
commands and their answers, the read store it tracks, URCs and a lost port handed to its owner,
a silent modem reported and taken back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from at_commands import AtTimeout, CmsError, ModemDisconnected, Responsive, Unresponsive
from at_commands.core import Urc

from at_helpers import channel_on, until


async def test_commands_are_answered_in_turn_and_the_read_store_is_tracked(bank) -> None:
    async with channel_on(bank) as channel:
        assert (await channel.query("signal"))[0].isdigit()
        assert channel.read_store is None               # nobody chose a store yet
        await channel.execute("select_read_store", store="ME")
        assert channel.read_store == "ME"
        refused = await channel.execute('AT+CPMS="XX"', check=False)
        with pytest.raises(CmsError):
            await channel.execute('AT+CPMS="XX"')
    assert refused.error is not None and channel.read_store is None  # unknown after a refusal
    assert not channel.is_open and channel.fileno() is None


async def test_several_commands_under_one_hold_of_the_lock(bank) -> None:
    async with channel_on(bank) as channel:
        async with channel.lock:
            other = asyncio.create_task(channel.query("registration"))
            await channel.run("select_read_store", store="SM")
            listed = await channel.run("list", status=4)
            assert not other.done()                     # it waits for the lock
        assert (await other)[1] == "1"
    assert listed.ok and channel.read_store == "SM"


async def test_urcs_go_to_the_owner(bank) -> None:
    urcs: list[Urc] = []
    async with channel_on(bank, setup=("pdu_mode",), on_urc=urcs.append) as channel:
        await channel.execute(channel.profile.new_message_routing)
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="hello")
        await until(lambda: any(urc.name == "+CMTI" for urc in urcs))
    assert urcs[-1].fields[0] == "SM" and urcs[-1].fields[1].isdigit()


async def test_a_silent_modem_is_reported_once_and_taken_back(bank) -> None:
    events: list[Any] = []
    async with channel_on(bank, publish=events.append) as channel:
        bank.set_fault("m1", "hang")
        for _ in range(2):
            with pytest.raises(AtTimeout):
                await channel.execute("signal", timeout=0.3)
        assert channel.unresponsive and [type(e) for e in events] == [Unresponsive]
        bank.clear_fault("m1", None)
        assert (await channel.query("signal"))[0].isdigit()   # resynchronised first
    assert [type(e) for e in events] == [Unresponsive, Responsive] and not channel.unresponsive


async def test_a_lost_port_fails_the_waiting_command_and_tells_the_owner(bank) -> None:
    lost: list[str] = []
    async with channel_on(bank, on_lost=lost.append) as channel:
        bank.set_fault("m1", "latency", seconds=30.0)
        query = asyncio.create_task(channel.query("signal"))
        await until(lambda: channel.pending_command == "AT+CSQ")
        await bank.unplug("m1")
        with pytest.raises(ModemDisconnected):
            await asyncio.wait_for(query, 10)
        await until(lambda: bool(lost))
        assert not channel.is_open
    assert len(lost) == 1


async def test_a_slow_modem_teaches_its_pace(bank) -> None:
    async with channel_on(bank) as channel:
        assert channel.patience(2.0) == 2.0              # nothing learned yet
        bank.set_fault("m1", "latency", seconds=0.4)
        await channel.query("signal")
    assert channel.response_time is not None and channel.response_time >= 0.4
    assert channel.patience(0.5) >= 4 * 0.4              # waits grow with the modem's pace
