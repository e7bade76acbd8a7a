"""Each simulator fault gives the error class the pool acts on; unplug and PIN handling."""

from __future__ import annotations

import asyncio
import logging

import pytest

import pdu
from at_commands import (AtTimeout, CmeError, CmsError, Disconnected, ErrorClass, InboundSms,
                         ModemDisconnected, ModemState, PinError, ReconnectFailed, Reconnected, Responsive,
                         SendAmbiguous, Unresponsive)
from simulator import SimulatedBank

from at_helpers import next_event, opened, profile, until


def parts_for(bank, text: str = "fault test"):
    return pdu.encode_submit(bank.modems[1].msisdn, text)


@pytest.mark.parametrize(("code", "error_class"), [
    (500, ErrorClass.TEMPORARY),
    (42, ErrorClass.TEMPORARY),
    (1, ErrorClass.PERMANENT),
    (195, ErrorClass.PERMANENT),
    (8, ErrorClass.SIM_OR_MODEM),
])
async def test_cms_error_fault_has_code_meaning_and_class(bank, code, error_class) -> None:
    async with opened(bank) as modem:
        bank.set_fault("m1", "cms_error", code=code)
        with pytest.raises(CmsError) as caught:
            await modem.send(parts_for(bank))
        bank.clear_fault("m1", None)
        assert await modem.send(parts_for(bank, "after")) != []
    assert caught.value.code == code and caught.value.error_class is error_class
    assert caught.value.meaning and caught.value.references == ()


async def test_not_registered_is_a_sim_or_modem_problem(bank) -> None:
    async with opened(bank) as modem:
        bank.set_fault("m1", "no_registration")
        with pytest.raises(CmsError) as caught:
            await modem.send(parts_for(bank))
    assert caught.value.code == 331 and caught.value.error_class is ErrorClass.SIM_OR_MODEM


async def test_out_of_credit_in_the_middle_keeps_the_references_that_went_out(bank) -> None:
    async with opened(bank) as modem:
        bank.set_fault("m1", "balance", messages=1, code=21)
        with pytest.raises(CmsError) as caught:
            await modem.send(parts_for(bank, "long " * 60))
    assert caught.value.code == 21 and caught.value.error_class is ErrorClass.SIM_OR_MODEM
    assert len(caught.value.references) == 1


async def test_silence_after_the_pdu_is_ambiguous_and_the_modem_recovers(bank) -> None:
    quick = profile(timeouts={"send_result": 0.5})
    async with opened(bank, profile=quick) as modem:
        first = await modem.send(parts_for(bank, "first"))
        bank.set_fault("m1", "hang_after_pdu")
        with pytest.raises(SendAmbiguous) as caught:
            await modem.send(parts_for(bank, "second " * 30))
        assert await next_event(modem, Unresponsive)
        bank.clear_fault("m1", None)
        again = await modem.send(parts_for(bank, "third"))
        assert await next_event(modem, Responsive)
    assert caught.value.error_class is ErrorClass.AMBIGUOUS
    assert caught.value.references == ()  # the first part's PDU is the one in doubt
    assert len(first) == len(again) == 1


async def test_hung_modem_times_out_with_an_event(bank) -> None:
    async with opened(bank) as modem:
        bank.set_fault("m1", "hang")
        with pytest.raises(AtTimeout) as caught:
            await modem.execute("signal", timeout=0.3)
        event = await next_event(modem, Unresponsive)
    assert event.command == "AT+CSQ" and caught.value.error_class is ErrorClass.SIM_OR_MODEM


async def test_sim_absent_fails_initialise_as_sim_problem(bank) -> None:
    bank.set_fault("m1", "sim_absent")
    async with opened(bank, initialise=False) as modem:
        with pytest.raises(CmeError) as caught:
            await modem.initialise()
    assert caught.value.code == 10 and caught.value.error_class is ErrorClass.SIM_OR_MODEM


async def test_unplug_gives_disconnected_then_recovers(bank) -> None:
    async with opened(bank) as modem:
        await bank.unplug("m1")
        lost = await next_event(modem, Disconnected)
        assert modem.state is ModemState.DISCONNECTED
        await bank.replug("m1")
        await next_event(modem, Reconnected)
        references = await modem.send(parts_for(bank, "after replug"))
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="back")
        inbound = await next_event(modem, InboundSms)
    assert lost.modem == "m1" and len(references) == 1 and inbound.decoded.text == "back"


async def test_wrong_pin_is_entered_once_only(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool")
    faults = {"m1": {"pin_locked": {"pin": "1234"}}}
    async with SimulatedBank(modems=1, directory=tmp_path, seed=1, faults=faults) as bank:
        sim = bank.modem("m1").sim
        async with opened(bank, initialise=False, pin="9876") as modem:
            with pytest.raises(PinError):
                await modem.initialise()
            assert sim.pin_attempts == 2
            with pytest.raises(PinError):
                await modem.initialise()              # asked again: refuses without trying
            await bank.unplug("m1")
            await next_event(modem, Disconnected)
            await bank.replug("m1")
            failed = await next_event(modem, ReconnectFailed)  # reconnect does not try either
            assert modem.state is ModemState.LOCKED
        async with opened(bank, initialise=False, pin="9876") as again:  # a new driver object
            with pytest.raises(PinError, match="refused"):
                await again.initialise()
        assert sim.pin_attempts == 2
    assert "PIN" in failed.reason
    ours = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("<<", ">>"))]
    assert any("CPIN=" in line for line in ours)
    assert not any("9876" in line for line in ours)


async def test_right_pin_unlocks_and_is_not_logged(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    faults = {"m1": {"pin_locked": {"pin": "4321"}}}
    async with SimulatedBank(modems=1, directory=tmp_path, seed=1, faults=faults) as bank:
        async with opened(bank, pin="4321") as modem:
            info = await modem.identify()
    assert info.registered
    ours = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("<<", ">>"))]
    assert any("CPIN=" in line for line in ours)
    assert not any("4321" in line for line in ours)


async def test_pin_required_without_pin_is_a_clear_error(tmp_path) -> None:
    faults = {"m1": {"pin_locked": {"pin": "1234"}}}
    async with SimulatedBank(modems=1, directory=tmp_path, seed=1, faults=faults) as bank:
        async with opened(bank, initialise=False) as modem:
            with pytest.raises(PinError, match="none is configured"):
                await modem.initialise()
        assert bank.modem("m1").sim.pin_attempts == 3


async def test_line_noise_before_every_reply_changes_nothing(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    bank.set_fault("m1", "garbage", length=12)
    async with opened(bank) as modem:
        info = await modem.identify()
        references = await modem.send(parts_for(bank, "through the noise"))
        messages = await bank.wait_for_messages(1)
    assert info.manufacturer == "SIMCOM_Ltd" and info.imei == bank.modems[0].imei
    assert messages[0]["message_references"] == references
    assert any(r.getMessage().startswith("<< (noise)") for r in caplog.records)


async def test_unplug_during_a_command_fails_it_at_once(bank) -> None:
    async with opened(bank, reconnect_delays=()) as modem:
        bank.set_fault("m1", "latency", seconds=30.0)
        query = asyncio.create_task(modem.query("signal"))
        await until(lambda: modem.pending_command == "AT+CSQ")
        await bank.unplug("m1")
        with pytest.raises(ModemDisconnected) as caught:
            await asyncio.wait_for(query, 10)
    assert caught.value.error_class is ErrorClass.SIM_OR_MODEM


async def test_unplug_after_the_pdu_was_written_is_ambiguous(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    async with opened(bank, reconnect_delays=()) as modem:
        bank.set_fault("m1", "sms_latency", seconds=30.0)
        sending = asyncio.create_task(modem.send(parts_for(bank, "in flight")))
        await until(lambda: any(r.getMessage().endswith("<Ctrl-Z>") for r in caplog.records))
        await bank.unplug("m1")
        with pytest.raises(SendAmbiguous) as caught:
            await asyncio.wait_for(sending, 10)
    assert caught.value.error_class is ErrorClass.AMBIGUOUS and caught.value.references == ()


async def test_explicit_reconnect_after_a_hang(bank) -> None:
    async with opened(bank, reconnect_delays=()) as modem:
        bank.set_fault("m1", "hang")
        with pytest.raises(AtTimeout):
            await modem.execute("signal", timeout=0.3)
        bank.clear_fault("m1", None)
        await modem.reconnect()
        await next_event(modem, Reconnected)
        assert modem.state is ModemState.READY
        assert (await modem.query("signal"))[0].isdigit()


async def test_a_cancelled_command_leaves_the_modem_usable(bank) -> None:
    async with opened(bank) as modem:
        bank.set_fault("m1", "latency", seconds=0.5)
        query = asyncio.create_task(modem.query("signal"))
        await until(lambda: modem.pending_command == "AT+CSQ")
        query.cancel()
        with pytest.raises(asyncio.CancelledError):
            await query
        bank.clear_fault("m1", None)
        assert (await modem.query("registration"))[1] == "1"   # not the stale +CSQ answer
