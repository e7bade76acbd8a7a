"""Modems as they really behave: answers without OK, quoted PDU lines, PIN attempts left.
(A bank of slow modems: tests/modempool/test_dispatch_field.py.)"""

from __future__ import annotations

import pytest

import pdu
from at_commands import AtTimeout, InboundSms, ModemState, PinError
from at_commands.commands import parse_stored_pdus
from simulator import SimulatedBank

from at_helpers import next_event, opened


async def test_an_answer_without_ok_is_taken_when_the_profile_says_so(tmp_path) -> None:
    async with SimulatedBank(modems=1, directory=tmp_path, personality="wavecom-q2403",
                             seed=3) as bank:
        bank.set_fault("m1", "pin_locked", pin="1234")
        async with opened(bank, pin="1234") as modem:  # detected as a Wavecom
            assert modem.state is ModemState.READY and modem.profile.name == "wavecom"
            assert await modem.query("pin_status") == "READY"
            assert modem.pending_command is None
            # The simulator really leaves the answer open: without the quirk in the profile
            # the same question is never answered.
            modem.profile = modem.profile.__class__(name="generic")
            with pytest.raises(AtTimeout):
                await modem.execute("pin_status", timeout=0.5)


async def test_quoted_pdu_lines_are_decoded(tmp_path) -> None:
    async with SimulatedBank(modems=1, directory=tmp_path, personality="wavecom-q2403",
                             seed=3) as bank:
        async with opened(bank) as modem:
            await bank.inject(to="m1", sender="+8613912345678", text="引号里的短信")
            event = await next_event(modem, InboundSms)
            assert event.decoded is not None and event.decoded.text == "引号里的短信"
            listed = await modem.query("list", status=4)
            assert listed and all(not item.pdu.startswith('"') for item in listed)


def test_stored_pdu_lines_lose_surrounding_quotes_and_blanks() -> None:
    hex_pdu = pdu.encode_deliver("+8613912345678", "hi")[0]
    lines = (f'+CMGL: 1,0,,{len(hex_pdu) // 2 - 9}', f'"{hex_pdu}"',
             f'+CMGL: 2,0,,{len(hex_pdu) // 2 - 9}', f'  {hex_pdu}  ',
             f'+CMGL: 3,0,,{len(hex_pdu) // 2 - 9}', f'" {hex_pdu} "')
    assert [item.pdu for item in parse_stored_pdus(lines, "+CMGL")] == [hex_pdu] * 3
    assert pdu.decode_pdu(parse_stored_pdus(lines[:2], "+CMGL")[0].pdu).text == "hi"


@pytest.mark.parametrize("personality", ["simcom", "huawei", "quectel", "zte"])
async def test_a_refused_pin_says_how_many_attempts_the_sim_has_left(tmp_path, personality):
    async with SimulatedBank(modems=1, directory=tmp_path, personality=personality,
                             seed=3) as bank:
        bank.set_fault("m1", "pin_locked", pin="1234")
        async with opened(bank, initialise=False, pin="9999") as modem:
            with pytest.raises(PinError, match=r"PIN refused: fix the config .*2 attempt\(s\) left"):
                await modem.initialise()
            assert modem.state is ModemState.LOCKED
            with pytest.raises(PinError):                     # never entered a second time
                await modem.initialise()
        assert bank.modem("m1").sim.pin_attempts == 2
