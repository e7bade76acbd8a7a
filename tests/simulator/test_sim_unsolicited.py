"""Unsolicited codes: their order after final results, +CMT acknowledgement with AT+CNMA,
the vendors' own URCs, and exclusive mode undone when a client closes the port."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import select
import sys
import termios
import time

import pdu
from sim_client import AtPort, info_lines

from simulator import SimulatedBank

TIOCGEXCL = 0x80045440  # Linux _IOR('T', 0x40, int); not exported by the termios module
CMT = rb"\r\n\+CMT: ,\d+\r\n([0-9A-F]+)\r\n"


def _raw_read(device: str, lines: int, timeout: float = 5.0) -> bytes:
    """What a client that does not flush on open (cat, a raw fd) reads: `lines` framed lines."""
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        data, deadline = b"", time.monotonic() + timeout
        while data.count(b"\r\n") < 2 * lines:  # the pty hands bytes over asynchronously
            assert time.monotonic() < deadline, data
            if select.select([fd], [], [], 0.05)[0]:
                data += os.read(fd, 4096)
        return data
    finally:
        os.close(fd)


def _cmt_text(urc: bytes) -> str:
    match = re.search(CMT, urc)
    assert match, urc
    return pdu.decode_pdu(match.group(1).decode()).text


# -- order: a URC a command causes comes after its final result ----------------------------
async def test_a_message_to_oneself_is_notified_after_the_cmgs_result(bank, ports):
    port = ports[0]
    await port.command("AT+CNMI=2,1,0,0,0")
    submit = pdu.encode_submit(bank.modems[0].msisdn, "to myself")[0]
    await port.send(f"AT+CMGS={submit.tpdu_length}\r".encode(), b"> ")
    reply = await port.send(submit.hex.encode() + b"\x1a",
                           re.compile(rb'\+CMTI: "SM",1\r\n'))
    assert re.fullmatch(rb'\r\n\+CMGS: \d+\r\n\r\nOK\r\n\r\n\+CMTI: "SM",1\r\n', reply), reply


async def test_urcs_caused_by_a_delayed_command_wait_for_its_result(bank, ports):
    port = ports[0]
    await port.command("AT+CREG=1")
    bank.set_fault("m1", "latency", seconds=0.3)
    reply = await port.send(b"AT+CFUN=0\r", re.compile(rb"\+CREG: 2\r\n"))
    assert reply == b"\r\nOK\r\n\r\n+CREG: 2\r\n"


# -- +CMT and AT+CNMA (TS 27.005 3.4.4) ----------------------------------------------------
async def test_cmt_needs_no_ack_by_default(bank, ports):
    port = ports[0]
    await port.command("AT+CNMI=2,2,0,0,0")
    assert info_lines(await port.command("AT+CSMS?")) == ["+CSMS: 0,1,1,1"]
    await bank.inject("m1", "+8613912345678", "one")
    await bank.inject("m1", "+8613912345678", "two")
    urcs = await port.expect(rb"(?s)(\+CMT: [^\r]*\r\n[0-9A-F]+\r\n.*){2}")
    assert [_cmt_text(m.group(0)) for m in re.finditer(CMT, urcs)] == ["one", "two"]
    assert await port.command("AT+CNMA") == b"\r\nOK\r\n"  # accepted, as phase-2 modems do
    assert bank.modem("m1").awaiting_ack is None


async def test_acknowledged_cmt_is_not_redelivered_and_holds_the_next(bank, ports):
    port = ports[0]
    bank.network.redelivery_delay = 0.05
    assert info_lines(await port.command("AT+CSMS=1;+CNMI=2,2,0,0,0")) == ["+CSMS: 1,1,1"]
    assert await port.command("AT+CNMA") == b"\r\n+CMS ERROR: 340\r\n"  # nothing to ack
    await bank.inject("m1", "+8613912345678", "first")
    await bank.inject("m1", "+8613912345678", "second")
    assert _cmt_text(await port.expect(CMT)) == "first"
    # TS 27.005: no other +CMT before the previous one is acknowledged.
    assert await port.silence(0.2) == b""
    assert await port.command("AT+CNMA") == b"\r\nOK\r\n"
    assert _cmt_text(await port.expect(CMT)) == "second"  # offered once "first" was acked
    assert await port.command("AT+CNMA=1") == b"\r\nOK\r\n"
    assert await port.silence(0.3) == b""  # neither comes again
    assert info_lines(await port.command("AT+CNMI?")) == ["+CNMI: 2,2,0,0,0"]
    assert info_lines(await port.command("AT+CMGL=4")) == []


async def test_unacknowledged_cmt_is_redelivered_and_lands_in_the_sim(bank, ports):
    port, modem = ports[0], bank.modem("m1")
    modem.ack_timeout, bank.network.redelivery_delay = 0.3, 0.1
    await port.command("AT+CSMS=1;+CNMI=2,2,0,0,0")
    await bank.inject("m1", "+8613912345678", "nobody acks me")
    assert _cmt_text(await port.expect(CMT)) == "nobody acks me"
    # No AT+CNMA: the ME answers the network with an error and turns routing off (<mt>=<ds>=0);
    # the network delivers again and the message is stored in the SIM without a notice.
    deadline = time.monotonic() + 5
    while not (listing := info_lines(await port.command("AT+CMGL=4"))):
        assert time.monotonic() < deadline, "the message never came back"
        await asyncio.sleep(0.05)
    assert listing[0].startswith("+CMGL: 1,0,,")
    assert pdu.decode_pdu(listing[1]).text == "nobody acks me"
    assert info_lines(await port.command("AT+CNMI?")) == ["+CNMI: 2,0,0,0,0"]
    assert await port.command("AT+CNMA") == b"\r\n+CMS ERROR: 340\r\n"


async def test_negative_ack_makes_the_network_try_again(bank, ports):
    port = ports[0]
    bank.network.redelivery_delay = 0.1
    await port.command("AT+CSMS=1;+CNMI=2,2,0,0,0")
    await bank.inject("m1", "10086", "try again")
    assert _cmt_text(await port.expect(CMT)) == "try again"
    assert await port.command("AT+CNMA=2") == b"\r\nOK\r\n"  # RP-ERROR: memory problem
    assert _cmt_text(await port.expect(CMT)) == "try again"  # +CNMI unchanged: shown again
    assert await port.command("AT+CNMA=0") == b"\r\nOK\r\n"
    assert await port.silence(0.3) == b""


# -- vendors' own URCs ---------------------------------------------------------------------
async def test_huawei_reports_signal_mode_and_boot_until_curc_0(tmp_path):
    async with SimulatedBank(1, tmp_path, personality="huawei", seed=5, chatter=0.01) as bank:
        port = AtPort(bank.devices[0])
        try:
            seen = b""
            for urc in (rb"\^RSSI:\d+\r\n", rb"\^MODE:5,4\r\n", rb"\^BOOT:[\d,]+\r\n"):
                if not re.search(urc, seen):
                    seen += await port.expect(urc)
            levels = [20] + [int(n) for n in re.findall(rb"\^RSSI:(\d+)", seen)]
            assert all(2 <= n <= 31 for n in levels)
            assert all(a != b for a, b in zip(levels, levels[1:]))  # printed when it changes
            await port.command("ATE0;^CURC=0")
            assert info_lines(await port.command("AT^CURC?")) == ["^CURC: 0"]
            await port.silence(0.05)  # whatever was on its way before the switch
            assert await port.silence(1.5) == b""  # ~100 periods of the fastest URC
            await port.command("AT^CURC=1")
            assert await port.expect(rb"\^(RSSI|MODE|BOOT):[\d,]+\r\n")
        finally:
            port.close()


async def test_wavecom_prints_wind_at_power_on(tmp_path):
    async with SimulatedBank(1, tmp_path, personality="wavecom", chatter=0) as bank:
        wind = b"\r\n+WIND: 1\r\n\r\n+WIND: 3\r\n\r\n+WIND: 4\r\n"
        assert await asyncio.to_thread(_raw_read, bank.devices[0], 3) == wind
        await bank.unplug("m1")
        await bank.replug("m1")  # a new power-on
        assert await asyncio.to_thread(_raw_read, bank.devices[0], 3) == wind


async def test_quectel_qind_at_power_on_and_csq_when_enabled(tmp_path):
    async with SimulatedBank(1, tmp_path, personality="quectel", chatter=0,
                             faults={"m1": {"pin_locked": {}}}) as bank:
        boot = await asyncio.to_thread(_raw_read, bank.devices[0], 6)
        assert boot.split(b"\r\n")[1::2] == [b"RDY", b"+CFUN: 1", b"+CPIN: SIM PIN",
                                             b"+QUSIM: 1", b"+QIND: SMS DONE", b"+QIND: PB DONE"]
        port = AtPort(bank.devices[0])
        try:
            await port.command("ATE0")
            await port.command('AT+CPIN="1234"')
            bank.set_signal("m1", 9)
            assert await port.silence(0.2) == b""  # "csq" indications are off at power-on
            assert await port.command('AT+QINDCFG="csq",1') == b"\r\nOK\r\n"
            bank.set_signal("m1", 14)
            assert await port.expect(rb"\+QIND: [^\r]*\r\n") == b'\r\n+QIND: "csq",14,99\r\n'
        finally:
            port.close()


# -- exclusive mode ------------------------------------------------------------------------
async def test_exclusive_mode_is_cleared_when_the_client_closes(bank):
    slave = bank._ports["m1"].slave

    def exclusive() -> bool:
        flag = bytearray(4)
        fcntl.ioctl(slave, TIOCGEXCL, flag)
        return int.from_bytes(flag, sys.byteorder) != 0

    first = AtPort(bank.devices[0])
    fcntl.ioctl(first.serial.fileno(), termios.TIOCEXCL)  # as gammu does
    assert await first.command("AT") == b"AT\r\r\nOK\r\n"
    assert exclusive()
    await asyncio.sleep(0.1)
    assert exclusive()  # nothing clears it while the client is there
    first.close()
    deadline = time.monotonic() + 10.0  # (the bank reacts to the close event; no timing asserted)
    while exclusive():
        assert time.monotonic() < deadline, "TIOCEXCL still set after the client closed"
        await asyncio.sleep(0.01)
    second = AtPort(bank.devices[0])
    try:
        assert await second.command("AT") == b"AT\r\r\nOK\r\n"
    finally:
        second.close()


async def test_cds_waits_for_cnma_and_a_later_report_is_stored(bank, ports):
    port = ports[0]
    await port.command("AT+CSMS=1;+CNMI=2,1,0,1,0")
    part = pdu.encode_submit("+8613511112222", "report me", status_report=True)[0]
    await port.send(f"AT+CMGS={part.tpdu_length}\r".encode(), b"> ")
    await port.send(part.hex.encode() + b"\x1a")
    await port.expect(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n")
    assert bank.modem("m1").awaiting_ack is not None
    await port.send(f"AT+CMGS={part.tpdu_length}\r".encode(), b"> ")
    await port.send(part.hex.encode() + b"\x1a")
    # The first +CDS is not acknowledged yet: the second report is stored, not shown.
    assert await port.expect(rb'\+CDSI: "SM",\d+\r\n') == b'\r\n+CDSI: "SM",1\r\n'
    assert await port.command("AT+CNMA") == b"\r\nOK\r\n"
    assert await port.command("AT+CNMA") == b"\r\n+CMS ERROR: 340\r\n"
