"""Races between what the modem announces and what we are doing: notices that arrive while a slot
is being freed, while a message is being sent, and a modem left at the ``> `` prompt by a client
that went away. Timed by the simulator's own traffic log (`modempool.simulator.<name>`): an action
is triggered by the line the simulated modem logs when a given command or byte reaches it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable

import pytest
import serial

import pdu
from at_commands import InboundSms, Modem
from simulator import SimulatedBank

from at_helpers import next_event, opened
from tests.log_handlers import handler_on

pytestmark = pytest.mark.timeout(60)

SENDER = "+8613912345678"


class _OnTraffic(logging.Handler):
    """Calls `action` (at once, inside the simulator's callback) the first time the simulated
    modem's traffic log has a line matching `pattern`."""

    def __init__(self, pattern: str, action: Callable[[], None]) -> None:
        super().__init__(logging.DEBUG)
        self.pattern, self.action, self.fired = re.compile(pattern), action, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and self.pattern.search(record.getMessage()):
            self.fired = True
            self.action()


def on_traffic(name: str, pattern: str,
               action: Callable[[], None]) -> contextlib.AbstractContextManager[_OnTraffic]:
    return handler_on(f"modempool.simulator.{name}", _OnTraffic(pattern, action), logging.DEBUG)


def inject_soon(bank: SimulatedBank, texts: list[str]) -> Callable[[], None]:
    """An action that injects `texts` back to back as soon as the current callback is over."""
    def action() -> None:
        async def inject() -> None:
            for text in texts:
                await bank.inject(to="m1", sender=SENDER, text=text)
        asyncio.get_running_loop().create_task(inject())
    return action


async def receive(modem: Modem, count: int) -> list[InboundSms]:
    """The next `count` received SMS, each acknowledged as a pool does once it is stored."""
    events = []
    for _ in range(count):
        event = await next_event(modem, InboundSms, timeout=5.0)
        events.append(event)
        await modem.acknowledge(event)
    return events


async def test_a_notice_for_a_slot_freed_by_a_delete_still_in_flight_is_read(bank, caplog) -> None:
    """The modem deletes message 1, stores the next one in the freed slot and says
    ``+CMTI: "SM",1`` before the ``OK`` of that ``AT+CMGD=1``: the new message is read at once,
    not left for the sweep because slot 1 still counted as handed over."""
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    async with opened(bank) as modem:  # sweeps every 300 s: only the notice can find it
        await bank.inject(to="m1", sender=SENDER, text="first")
        first = await next_event(modem, InboundSms)
        assert first.index == 1
        bank.set_fault("m1", "latency", seconds=0.3)  # the OK of AT+CMGD comes 0.3 s late
        with on_traffic("m1", r"^<- AT\+CMGD=1$", inject_soon(bank, ["second"])) as trigger:
            await modem.acknowledge(first)
        assert trigger.fired
        second = await next_event(modem, InboundSms, timeout=5.0)
        bank.clear_fault("m1", "latency")
        await modem.acknowledge(second)
        assert not bank.modem("m1").stores["SM"].slots
    assert (second.index, second.decoded.text) == (1, "second")
    lines = [r.getMessage() for r in caplog.records if r.name == "modempool.modem.m1"]
    delete = lines.index(">> AT+CMGD=1")
    notice = lines.index('<< +CMTI: "SM",1', delete)
    assert "<< OK" not in lines[delete:notice], "the notice did not come before the OK"


async def test_a_late_acknowledge_leaves_the_newer_message_in_a_reused_slot(bank) -> None:
    async with opened(bank) as modem:
        await bank.inject(to="m1", sender=SENDER, text="first")
        first = await next_event(modem, InboundSms)
        await modem.acknowledge(first)
        await bank.inject(to="m1", sender=SENDER, text="second")
        second = await next_event(modem, InboundSms)
        assert second.index == first.index
        await modem.acknowledge(first)  # again (a retry after a lost OK): slot 1 is not its own
        slots = bank.modem("m1").stores["SM"].slots
        assert slots[second.index].pdu == second.pdu
        await modem.acknowledge(second)
        assert not slots


# (moment, the simulator's log line that triggers the injection, faults that open the window)
MOMENTS = [
    ("before the prompt", r"^<- AT\+CMGS=", {"latency": {"seconds": 0.05}}),
    ("at the prompt, before the PDU", r"^tx b'\\r\\n> '$", {}),
    ("after the PDU, before +CMGS", r"^rx '0.*\\x1a'$", {"sms_latency": {"seconds": 0.05}}),
    ("with the +CMGS reply", r"^tx b'\\r\\n\+CMGS: ", {}),
]


@pytest.mark.parametrize("moment, pattern, faults", MOMENTS, ids=[m[0] for m in MOMENTS])
async def test_messages_arriving_during_a_send_are_all_announced_and_read(
        tmp_path, moment, pattern, faults) -> None:
    """Sends on the modem that receives, 1-3 SMS injected at one moment of each send while the
    earlier ones are being read and deleted: every one comes through its ``+CMTI``."""
    async with SimulatedBank(modems=1, directory=tmp_path, personality="simcom", seed=5) as bank:
        async with opened(bank) as modem:
            for kind, params in faults.items():
                bank.set_fault("m1", kind, **params)
            for round_ in range(6):
                texts = [f"{moment} {round_}.{n}" for n in range(1 + round_ % 3)]
                part = pdu.encode_submit("+8613800138000", f"reply {round_}")
                with on_traffic("m1", pattern, inject_soon(bank, texts)) as trigger:
                    references, events = await asyncio.gather(
                        modem.send(part), receive(modem, len(texts)))
                assert trigger.fired
                assert len(references) == 1
                assert sorted(e.decoded.text for e in events) == texts
            assert not bank.modem("m1").stores["SM"].slots
        messages = await bank.wait_for_messages(6)
    assert [m["text"] for m in messages] == [f"reply {n}" for n in range(6)]


async def test_a_modem_left_at_the_prompt_by_a_client_that_went_away(bank) -> None:
    """A client killed after ``AT+CMGS=<n>`` leaves the modem waiting for a PDU; our ESC gets an
    ``OK`` of its own, which must not be taken as the answer to the next command."""
    def leave_at_prompt() -> bytes:
        with serial.Serial(bank.devices[0], 115200, timeout=5) as port:
            port.write(b"AT+CMGS=19\r")
            return port.read_until(b"> ")

    assert (await asyncio.to_thread(leave_at_prompt)).endswith(b"> ")
    bank.set_fault("m1", "latency", seconds=0.1)  # the ESC's OK and the next answer come apart
    async with opened(bank) as modem:
        bank.clear_fault("m1", "latency")
        info = await modem.identify()
        assert (await modem.query("manufacturer")) == "SIMCOM_Ltd"
    assert modem.profile.name == "simcom"
    assert (info.imei, info.imsi) == (bank.modems[0].imei, bank.modems[0].imsi)
