"""Every fault kind, set at start or at run time, as a client on the pty sees it."""

from __future__ import annotations

import asyncio
import os
import re

import pdu
import pytest
import serial
from sim_client import AtPort, info_lines

from simulator import Fault, SimulatedBank


def a_part(text: str = "fault test", to: str = "+8613511112222", **options):
    return pdu.encode_submit(to, text, **options)[0]


async def start_send(port: AtPort, part) -> None:
    assert await port.command(f"AT+CMGS={part.tpdu_length}") == b"\r\n> "
    await asyncio.to_thread(port.serial.write, part.hex.encode() + b"\x1a")


async def test_latency_delays_results_not_urcs(bank, ports):
    port = ports[0]
    bank.set_fault("m1", "latency", seconds=0.6)
    await asyncio.to_thread(port.serial.write, b"AT\r")
    assert await port.silence(0.2) == b""
    assert await port.expect(rb"\r\nOK\r\n") == b"\r\nOK\r\n"
    bank.clear_fault("m1", "latency")
    assert await port.command("AT") == b"\r\nOK\r\n"


async def test_urc_arrives_while_a_send_is_in_progress(bank, ports):
    port = ports[0]
    bank.set_fault("m1", Fault.SMS_LATENCY, seconds=0.8)
    await start_send(port, a_part())
    await bank.inject("m1", "+8613912345678", "meanwhile")
    reply = await port.expect(rb"\+CMGS: \d+\r\n\r\nOK\r\n")
    assert re.match(rb'\r\n\+CMTI: "SM",1\r\n\r\n\+CMGS: \d+\r\n\r\nOK\r\n', reply), reply


async def test_cms_error_rejects_sends_then_recovers(bank, ports):
    port = ports[0]
    bank.set_fault("m1", "cms_error", code=38, count=1)
    await start_send(port, a_part())
    assert await port.expect(rb"\r\n\+CMS ERROR: \d+\r\n") == b"\r\n+CMS ERROR: 38\r\n"
    await start_send(port, a_part())
    assert b"+CMGS: " in await port.expect(rb"\r\nOK\r\n")
    bank.set_fault("m1", "cms_error")
    await start_send(port, a_part())
    assert await port.expect(rb"\r\n\+CMS ERROR: \d+\r\n") == b"\r\n+CMS ERROR: 500\r\n"
    assert len(await bank.wait_for_messages(1)) == 1


async def test_no_registration(bank, ports):
    port = ports[0]
    await port.command("AT+CREG=1")
    bank.set_fault("m1", "no_registration")
    await port.expect(rb"\r\n\+CREG: 2\r\n")
    assert info_lines(await port.command("AT+CREG?")) == ["+CREG: 1,2"]
    assert info_lines(await port.command("AT+COPS?")) == ["+COPS: 0"]
    assert info_lines(await port.command("AT+CSQ")) == ["+CSQ: 99,99"]
    await start_send(port, a_part())
    assert await port.expect(rb"\r\n\+CMS ERROR: \d+\r\n") == b"\r\n+CMS ERROR: 331\r\n"
    bank.clear_fault("m1", "no_registration")
    await port.expect(rb"\r\n\+CREG: 1\r\n")


async def test_sim_absent(bank, ports):
    port = ports[0]
    bank.set_fault("m1", "sim_absent")
    await port.command("AT+CMEE=1")
    assert await port.command("AT+CPIN?") == b"\r\n+CME ERROR: 10\r\n"
    assert await port.command("AT+CIMI") == b"\r\n+CME ERROR: 10\r\n"
    assert await port.command("AT+CMGS=20") == b"\r\n+CMS ERROR: 310\r\n"
    assert await port.command("AT+CGMI") == b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"
    bank.clear_fault("m1")
    assert info_lines(await port.command("AT+CPIN?")) == ["+CPIN: READY"]


async def test_pin_then_puk_counters(tmp_path):
    async with SimulatedBank(1, tmp_path, faults={"m1": {"pin_locked": {"pin": "4321"}}}) as bank:
        port = AtPort(bank.devices[0])
        try:
            await port.command("ATE0;+CMEE=1")
            assert info_lines(await port.command("AT+CPIN?")) == ["+CPIN: SIM PIN"]
            assert await port.command("AT+CIMI") == b"\r\n+CME ERROR: 11\r\n"
            assert await port.command("AT+CREG?") == b'\r\n+CREG: 0,2\r\n\r\nOK\r\n'
            for _ in range(3):
                assert await port.command('AT+CPIN="0000"') == b"\r\n+CME ERROR: 16\r\n"
            assert info_lines(await port.command("AT+CPIN?")) == ["+CPIN: SIM PUK"]
            assert await port.command('AT+CPIN="4321"') == b"\r\n+CME ERROR: 50\r\n"
            assert await port.command('AT+CPIN="11111111","1111"') == b"\r\n+CME ERROR: 16\r\n"
            assert await port.command('AT+CPIN="12345678","1111"') == b"\r\nOK\r\n"
            assert info_lines(await port.command("AT+CPIN?")) == ["+CPIN: READY"]
            assert info_lines(await port.command("AT+CIMI")) == [bank.modems[0].imsi]
            assert bank.modem("m1").sim.pin == "1111"
        finally:
            port.close()


async def test_right_pin_unlocks(bank, ports):
    bank.set_fault("m2", "pin_locked", pin="2468")
    port = ports[1]
    assert info_lines(await port.command("AT+CPIN?")) == ["+CPIN: SIM PIN"]
    assert await port.command('AT+CPIN="2468"') == b"\r\nOK\r\n"
    assert info_lines(await port.command("AT+CREG?")) == ["+CREG: 0,1"]


@pytest.mark.parametrize("delivered", [True, False])
async def test_hang_after_pdu(bank, ports, delivered):
    port = ports[0]
    bank.set_fault("m1", "hang_after_pdu", delivered=delivered)
    await start_send(port, a_part("into the void"))
    await asyncio.to_thread(port.serial.write, b"AT\r")
    assert await port.silence(0.4) == b""
    texts = [e["text"] for e in bank.network_log() if e["kind"] == "message"]
    assert texts == (["into the void"] if delivered else [])
    bank.clear_fault("m1", "hang_after_pdu")
    assert await port.command("AT") == b"\r\nOK\r\n"


async def test_prompt_give_up_leaves_the_prompt_and_a_late_pdu_spoils_the_next_line(bank, ports):
    port = ports[0]
    bank.set_fault("m1", "prompt_give_up", code=304)
    part = a_part("too late")
    answer = await port.send(f"AT+CMGS={part.tpdu_length}\r".encode(),
                             re.compile(rb"\+CMS ERROR: \d+\r\n"))
    assert answer == b"\r\n> \r\n+CMS ERROR: 304\r\n"
    # back in command mode: the PDU is read as the start of a line, so the AT after it is lost
    await asyncio.to_thread(port.serial.write, part.hex.encode() + b"\x1a" + b"AT\r")
    assert await port.command("AT") == b"\r\nOK\r\n"
    assert bank.network_log() == []
    bank.clear_fault("m1", "prompt_give_up")
    await start_send(port, part)
    assert b"+CMGS: " in await port.expect(rb"\r\nOK\r\n")


async def test_hang_stops_answering(bank, ports):
    bank.set_fault("m2", "hang")
    await asyncio.to_thread(ports[1].serial.write, b"AT\r")
    assert await ports[1].silence(0.3) == b""
    bank.clear_fault("m2")
    assert await ports[1].command("AT") == b"\r\nOK\r\n"


async def test_unplug_and_replug_repoint_the_symlink(bank, ports):
    link = bank.devices[0]
    old_target = os.readlink(link)
    await bank.unplug("m1")
    assert not os.path.lexists(link)
    with pytest.raises(serial.SerialException):
        await asyncio.to_thread(ports[0].serial.read, 10)
    await bank.inject("m1", "+8613912345678", "while away")  # the network keeps it
    await bank.replug("m1")
    assert os.path.exists(link) and os.readlink(link).startswith("/dev/pts/")
    assert old_target.startswith("/dev/pts/")
    port = AtPort(link)
    try:
        assert await port.command("AT") == b"AT\r\r\nOK\r\n"  # rebooted: echo on again
        listing = info_lines(await port.command("AT+CMGL=4"))
        assert pdu.decode_pdu(listing[-1]).text == "while away"
    finally:
        port.close()


async def test_unplug_fault_with_duration_comes_back(bank):
    link = bank.devices[1]
    bank.set_fault("m2", "unplug", duration=0.3)
    assert not os.path.lexists(link)
    async with asyncio.timeout(5):
        while not os.path.exists(link):  # no event crosses the filesystem; poll
            await asyncio.sleep(0.05)
    port = AtPort(link)
    try:
        assert await port.command("AT") == b"AT\r\r\nOK\r\n"
    finally:
        port.close()


async def test_garbage_before_replies(bank, ports):
    bank.set_fault("m1", "garbage", length=5)
    reply = await ports[0].command("AT")
    assert reply.endswith(b"\r\nOK\r\n") and len(reply) == 5 + 6


async def test_boot_noise_now_and_after_replug(tmp_path):
    async with SimulatedBank(1, tmp_path, personality="huawei", seed=1) as bank:
        port = AtPort(bank.devices[0])
        try:
            bank.set_fault("m1", "boot_noise")
            noise = await port.expect(rb"\^MODE:5,4\r\n")
            assert b"^BOOT:" in noise and b"^RSSI:20" in noise
        finally:
            port.close()
        await bank.unplug("m1")
        await bank.replug("m1")
        port = AtPort(bank.devices[0])
        try:
            # pyserial flushed its input on open, so reboot noise comes with the next answer
            bank.modem("m1").boot_noise()
            assert b"^BOOT:" in await port.expect(rb"\^MODE:5,4\r\n")
        finally:
            port.close()


async def test_storage_full_rejects_and_holds_incoming(bank, ports):
    port = ports[0]
    bank.set_fault("m1", "storage_full")
    assert info_lines(await port.command("AT+CPMS?")) == ['+CPMS: "SM",50,50,"SM",50,50,"SM",50,50']
    draft = a_part()
    await port.command(f"AT+CMGW={draft.tpdu_length}")
    assert await port.send(draft.hex.encode() + b"\x1a") == b"\r\n+CMS ERROR: 322\r\n"
    await bank.inject("m1", "+8613912345678", "held by the network")
    assert await port.silence(0.2) == b""
    bank.clear_fault("m1", "storage_full")
    assert await port.expect(rb'\+CMTI: "SM",1\r\n')


async def test_balance_runs_out_after_k_parts(bank, ports):
    port = ports[0]
    bank.set_fault("m1", "balance", messages=1)
    await start_send(port, a_part())
    assert b"+CMGS:" in await port.expect(rb"\r\nOK\r\n")
    await start_send(port, a_part())
    assert await port.expect(rb"\r\n\+CMS ERROR: \d+\r\n") == b"\r\n+CMS ERROR: 21\r\n"
    await port.command('AT+CUSD=1,"*100#",15')
    assert b"49.90" in await port.expect(rb"\+CUSD: 0,.*\r\n")


async def test_no_status_report(bank, ports):
    port = ports[0]
    await port.command("AT+CNMI=2,1,0,1,0")
    bank.set_fault("m1", "no_status_report")
    await start_send(port, a_part(status_report=True))
    assert b"+CMGS:" in await port.expect(rb"\r\nOK\r\n")
    await bank.wait_for_messages(1)
    assert b"+CDS" not in await port.silence(0.3)


def test_unknown_fault_and_parameter_are_clear_errors():
    from simulator.faults import fault_params
    with pytest.raises(ValueError, match="unknown fault 'melt'"):
        fault_params("melt", {})
    with pytest.raises(ValueError, match="takes no parameter"):
        fault_params("cms_error", {"colour": "red"})


async def test_signal_change_and_huawei_rssi_urc(tmp_path):
    async with SimulatedBank(1, tmp_path, personality="huawei") as bank:
        port = AtPort(bank.devices[0])
        try:
            await port.command("ATE0")
            bank.set_signal("m1", 7)
            assert await port.expect(rb"\^RSSI:\d+\r\n") == b"\r\n^RSSI:7\r\n"
            assert info_lines(await port.command("AT+CSQ")) == ["+CSQ: 7,99"]
            await port.command("AT^CURC=0")
            bank.set_signal("m1", 25)
            assert await port.command("AT+CSQ") == b"\r\n+CSQ: 25,99\r\n\r\nOK\r\n"
        finally:
            port.close()


async def test_sms_for_a_locked_sim_waits_until_the_pin_is_entered(bank, ports):
    port = ports[1]
    bank.set_fault("m2", "pin_locked", pin="2468")
    await bank.inject("m2", "+8613912345678", "after the PIN")
    assert await port.silence(0.2) == b""
    assert await port.command('AT+CPIN="2468"') == b"\r\nOK\r\n"  # the notice follows the OK
    assert await port.expect(rb"\r\n\+CMTI: [^\r]*\r\n") == b'\r\n+CMTI: "SM",1\r\n'
