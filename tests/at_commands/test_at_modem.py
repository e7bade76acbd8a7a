"""The driver against simulated modems on real ptys: set-up, identity, sending, receiving."""

from __future__ import annotations

import asyncio
import logging

import pytest

import pdu
from at_commands import AtError, InboundSms, Modem, SignalChanged, StatusReport
from at_commands.commands import parse_fields
from simulator import PERSONALITIES, SimulatedBank

from at_helpers import next_event, opened, profile, until


async def used(modem: Modem, store: str) -> int:
    """Messages in `store`: ``AT+CPMS="store"`` answers ``+CPMS: <used1>,<total1>,...`` for it
    in the same reply (one command, so a background sweep cannot move the store in between)."""
    result = await modem.execute("select_read_store", store=store)
    return int(parse_fields(result.lines, "+CPMS")[0])


@pytest.mark.parametrize("personality", sorted(PERSONALITIES))
async def test_every_personality_initialises_and_identifies(tmp_path, personality) -> None:
    async with SimulatedBank(modems=1, directory=tmp_path, personality=personality, seed=3) as bank:
        async with opened(bank) as modem:
            info = await modem.identify()
            expected = bank.modems[0]
    assert modem.profile.name == personality.split("-")[0]  # wavecom-q2403: a wavecom
    assert (info.imei, info.imsi, info.iccid, info.msisdn) == (
        expected.imei, expected.imsi, expected.iccid, expected.msisdn)
    assert info.registered and info.registration == 1
    assert info.manufacturer == PERSONALITIES[personality].manufacturer
    assert info.operator == expected.operator
    assert info.signal_dbm is not None and -113 <= info.signal_dbm <= -51
    assert 0 < info.signal_bars <= 4
    assert info.smsc and info.smsc.startswith("+")
    assert info.storage and info.storage[0].total > 0


async def test_single_and_multipart_sends_reach_the_network(bank) -> None:
    async with opened(bank) as modem:
        single = await modem.send(pdu.encode_submit(bank.modems[1].msisdn, "你好，世界"))
        long_text = "A message long enough to need three parts. " * 8
        parts = pdu.encode_submit(bank.modems[1].msisdn, long_text)
        multi = await modem.send(parts)
        messages = await bank.wait_for_messages(2, timeout=10)
    assert len(single) == 1 and len(multi) == len(parts) == 3
    assert [m["text"] for m in messages] == ["你好，世界", long_text]
    assert messages[0]["message_references"] == single
    assert messages[1]["message_references"] == multi


async def test_send_accepts_hex_strings_with_smsc_octet(bank) -> None:
    async with opened(bank) as modem:
        part = pdu.encode_submit(bank.modems[1].msisdn, "raw hex")[0]
        references = await modem.send([part.hex])
        messages = await bank.wait_for_messages(1)
    assert messages[0]["text"] == "raw hex" and messages[0]["message_references"] == references


async def test_inbound_cmti_is_read_and_deleted_only_on_acknowledge(bank) -> None:
    async with opened(bank) as modem:
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="回T退订")
        event = await next_event(modem, InboundSms)
        assert event.decoded.text == "回T退订" and event.decoded.sender == "+8613912345678"
        assert event.index is not None
        used_before = await used(modem, event.store)
        await modem.acknowledge(event)
        used_after = await used(modem, event.store)
    assert (used_before, used_after) == (1, 0)


async def test_inbound_cmt_direct_delivery(bank) -> None:
    direct = profile(new_message_routing="AT+CNMI=2,2,0,0,0")
    async with opened(bank, profile=direct) as modem:
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="direct")
        event = await next_event(modem, InboundSms)
        await modem.acknowledge(event)  # nothing stored: no AT+CMGD
        usage = await modem.query("store_usage")
    assert event.decoded.text == "direct" and event.index is None
    assert all(store.used == 0 for store in usage)


async def test_sweep_finds_messages_that_came_while_away_and_without_notification(bank) -> None:
    silent = profile(new_message_routing="AT+CNMI=0,0,0,0,0")
    await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="while away")
    async with opened(bank, profile=silent, sweep_interval=0.2) as modem:
        first = await next_event(modem, InboundSms)          # the sweep at start
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="no notice")
        second = await next_event(modem, InboundSms)         # a periodic sweep
        await modem.acknowledge(first)
        await modem.acknowledge(second)
    assert (first.decoded.text, second.decoded.text) == ("while away", "no notice")


async def test_a_message_is_handed_over_once_until_acknowledged(bank) -> None:
    async with opened(bank, sweep_interval=0.1) as modem:
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="once")
        event = await next_event(modem, InboundSms)
        assert await modem.sweep() == 0 and await modem.sweep() == 0
        assert modem.event_nowait() is None
        await modem.acknowledge(event)


async def test_a_message_whose_delete_was_refused_is_handed_over_by_the_next_sweep(bank) -> None:
    async with opened(bank) as modem:
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="keep me")
        event = await next_event(modem, InboundSms)
        bank.set_fault("m1", "sim_absent")  # AT+CMGD answers +CMS ERROR: 310
        with pytest.raises(AtError):
            await modem.acknowledge(event)
        bank.clear_fault("m1", "sim_absent")
        await modem.sweep()  # (or the read its +CMTI asked for, if that came after the refusal)
        again = await next_event(modem, InboundSms, timeout=3.0)
        while (other := modem.event_nowait()) is not None:
            assert not isinstance(other, InboundSms), "handed over twice"
        assert (again.index, again.pdu) == (event.index, event.pdu)
        await modem.acknowledge(again)
        assert not bank.modem("m1").stores["SM"].slots


async def test_a_released_message_is_handed_over_again_by_the_next_sweep(bank) -> None:
    async with opened(bank) as modem:
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="store me")
        event = await next_event(modem, InboundSms)
        assert await modem.sweep() == 0              # handed over: the sweep leaves it
        modem.release(event)                         # the consumer could not store it
        assert await modem.sweep() == 1
        again = await next_event(modem, InboundSms)
        assert (again.index, again.pdu) == (event.index, event.pdu)
        await modem.acknowledge(again)
        assert not bank.modem("m1").stores["SM"].slots


async def test_a_notice_whose_read_was_refused_brings_the_sweep_forward(bank) -> None:
    async with opened(bank, sweep_interval=3600, failed_read_sweep=0.2) as modem:
        await modem.sweep()
        bank.set_fault("m1", "command_error", command="+CMGR", code=500, count=1)
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="read me")
        event = await next_event(modem, InboundSms, timeout=5.0)   # not in an hour: in 0.2 s
        assert event.decoded.text == "read me"
        assert "command_error" not in bank.modem("m1").faults   # the read did fail once
        await modem.acknowledge(event)


async def test_urc_during_a_long_command_is_delivered(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    async with opened(bank) as modem:
        bank.set_fault("m1", "latency", seconds=1.0)
        query = asyncio.create_task(modem.query("signal"))
        await until(lambda: modem.pending_command == "AT+CSQ")
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="mid-reply")
        signal = await query
        bank.clear_fault("m1", "latency")
        event = await next_event(modem, InboundSms)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("<< ")]
    urc_at = next(i for i, line in enumerate(lines) if line.startswith("<< +CMTI"))
    reply_at = next(i for i, line in enumerate(lines) if line.startswith("<< +CSQ"))
    assert urc_at < reply_at, "the +CMTI did not arrive inside the AT+CSQ reply"
    assert signal[0].isdigit() and event.decoded.text == "mid-reply"


async def test_status_report_is_delivered(bank) -> None:
    reports = profile(new_message_routing="AT+CNMI=2,1,0,1,0")
    async with opened(bank, profile=reports) as modem:
        parts = pdu.encode_submit(bank.modems[1].msisdn, "report please", status_report=True)
        (reference,) = await modem.send(parts)
        report = await next_event(modem, StatusReport)
    assert report.decoded.message_reference == reference
    assert report.decoded.recipient == bank.modems[1].msisdn


async def test_ussd_reply(bank) -> None:
    async with opened(bank) as modem:
        text = await modem.ussd("*100#")
    assert "balance" in text.lower()


async def test_a_modem_that_restarts_is_initialised_again(bank) -> None:
    async with opened(bank) as modem:
        virtual = bank.modem("m1")
        ours = virtual.settings.cnmi
        virtual.reboot()                      # settings back to the vendor defaults...
        assert virtual.settings.cnmi != ours
        virtual.boot_noise()                  # ...and it says so with RDY
        await until(lambda: virtual.settings.cnmi == ours)
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="after boot")
        event = await next_event(modem, InboundSms)
    assert event.decoded.text == "after boot"


async def test_signal_polling_reports_changes(bank) -> None:
    async with opened(bank, poll_interval=0.1) as modem:
        first = await next_event(modem, SignalChanged)
        bank.set_signal("m1", 5)
        weak = await next_event(modem, SignalChanged)
    assert first.bars == 4 and (weak.rssi, weak.dbm, weak.bars) == (5, -103, 1)


async def test_direct_delivery_is_acknowledged_with_cnma_when_the_profile_says(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    phase2 = profile(new_message_routing="AT+CNMI=2,2,0,0,0", sms_service=1, cnma_required=True)
    async with opened(bank, profile=phase2) as modem:
        await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678", text="ack me")
        event = await next_event(modem, InboundSms)
        assert not any(r.getMessage() == ">> AT+CNMA" for r in caplog.records)
        await modem.acknowledge(event)
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith(">> ")]
    assert ">> AT+CSMS=1" in sent and ">> AT+CNMA" in sent


async def test_part_by_part_sending_keeps_the_link_across_calls(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    text = "Sent one part per call, as a spool that records each part does. " * 4
    parts = pdu.encode_submit(bank.modems[1].msisdn, text)
    async with opened(bank) as modem:
        references = []
        for part in parts:
            references += await modem.send([part], more_to_follow=part.seq < part.total)
        messages = await bank.wait_for_messages(1)
    sent = [r.getMessage()[3:] for r in caplog.records
            if r.getMessage().startswith(">> AT+CM")]
    sends = [line for line in sent if line.startswith(("AT+CMMS", "AT+CMGS"))]
    assert sends == ["AT+CMMS=2", *[line for line in sends if line.startswith("AT+CMGS")],
                     "AT+CMMS=0"]
    assert len(parts) == 2 and messages[0]["text"] == text
    assert messages[0]["message_references"] == references


async def test_acknowledge_deletes_from_the_right_store_while_sweeps_move_it(bank) -> None:
    """Sweeps switch the read store (SM, ME) all the time; a delete must still hit the store
    its message is in (store selection and command under one hold of the lock)."""
    async with opened(bank, sweep_interval=0.01) as modem:
        for number in range(4):
            await bank.inject(to=bank.modems[0].msisdn, sender="+8613912345678",
                              text=f"number {number}")
            event = await next_event(modem, InboundSms)
            await modem.acknowledge(event)
        assert await used(modem, "SM") == 0 and await used(modem, "ME") == 0
