"""Acceptance: real third-party clients, unmodified, against the simulated bank.

Gammu runs as a real subprocess (Debian package `gammu`); python-gsmmodem-new blocks, so it
runs in a worker thread while the bank answers from the test's event loop.
"""

from __future__ import annotations

import asyncio
import threading

import pdu
import pytest

from tests.programs import require_program
from simulator import PERSONALITIES, SimulatedBank
from simulator.network import PinState

LONG_CHINESE = ("各位用户您好：本周六凌晨两点至六点将进行系统维护，届时短信发送功能可能会受到影响。"
                "给您带来的不便敬请谅解，如有疑问请致电客服热线，我们将竭诚为您服务。谢谢！")


@pytest.fixture
async def gammu_bank(tmp_path):
    require_program("gammu")
    async with SimulatedBank(2, tmp_path / "bank", personality="simcom", seed=11,
                             faults={"m2": {"pin_locked": {"pin": "1234"}}}) as bank:
        yield bank


async def gammu(bank: SimulatedBank, modem: int, *args: str) -> str:
    config = bank.directory / f"gammurc-{modem}"
    config.write_text(f"[gammu]\ndevice = {bank.devices[modem]}\nconnection = at\nmodel = at\n")
    process = await asyncio.create_subprocess_exec(
        "gammu", "-c", str(config), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text
    return text


async def test_gammu_identify_and_security_status(gammu_bank):
    bank = gammu_bank
    identity, locked = await asyncio.gather(gammu(bank, 0, "identify"),
                                            gammu(bank, 1, "getsecuritystatus"))
    assert f"IMEI                 : {bank.modems[0].imei}" in identity
    assert f"SIM IMSI             : {bank.modems[0].imsi}" in identity
    assert "SIMCOM_Ltd" in identity
    assert "Waiting for PIN." in locked
    status, _ = await asyncio.gather(gammu(bank, 0, "getsecuritystatus"),
                                     gammu(bank, 1, "entersecuritycode", "PIN", "1234"))
    assert "Nothing to enter." in status
    assert bank.modem("m2").sim.pin_state is PinState.READY


async def test_gammu_identifies_every_personality(tmp_path):
    async def identify(name: str) -> tuple[str, str]:
        async with SimulatedBank(1, tmp_path / name, personality=name, seed=2) as bank:
            return bank.modems[0].imei, await gammu(bank, 0, "identify")

    names = sorted(PERSONALITIES)
    results = await asyncio.gather(*(identify(name) for name in names))  # gammu mostly sleeps
    for name, (imei, output) in zip(names, results):
        assert f"IMEI                 : {imei}" in output, (name, output)
        assert PERSONALITIES[name].model in output, (name, output)


async def test_gammu_sends_a_long_chinese_text(gammu_bank):
    bank = gammu_bank
    to = "+8613511112222"
    output = await gammu(bank, 0, "sendsms", "TEXT", to, "-unicode", "-len", "400",
                         "-text", LONG_CHINESE)
    [message] = await bank.wait_for_messages(1)
    assert message["text"] == LONG_CHINESE
    assert message["from"] == bank.modems[0].msisdn and message["to"] == to
    references = message["message_references"]
    assert len(references) == 2 and output.count("OK, message reference=") == 2
    for reference in references:
        assert f"message reference={reference}\n" in output


async def test_gammu_reads_injected_messages(gammu_bank):
    bank = gammu_bank
    parts = await bank.inject("m1", "+8613912345678", LONG_CHINESE)
    await bank.inject("m1", "10086", "Your code is 4711")
    output = await gammu(bank, 0, "getallsms")
    for part in parts:
        assert pdu.decode_pdu(part).text in output
    assert "Your code is 4711" in output
    assert '"+8613912345678"' in output and '"10086"' in output
    assert f"{len(parts) + 1} SMS parts" in output


def _gsmmodem_session(device: str, to: str, received: list, arrived: threading.Event):
    from gsmmodem.modem import GsmModem

    def on_sms(sms) -> None:
        received.append((sms.number, sms.text))
        arrived.set()

    modem = GsmModem(device, 115200, smsReceivedCallbackFunc=on_sms, requestDelivery=False)
    modem.connect()
    return modem


async def test_python_gsmmodem_sends_receives_and_queries_balance(tmp_path):
    # python-gsmmodem always asks for status reports and loses a URC that arrives while it
    # waits for a reply: a +CMTI landing while it reads a +CDSI report would be dropped by the
    # client (its known limitation), so this modem's network sends no reports.
    async with SimulatedBank(2, tmp_path, personality="huawei", seed=4,
                             faults={"m1": {"no_status_report": {}}}) as bank:
        received: list = []
        arrived = threading.Event()
        modem = await asyncio.to_thread(_gsmmodem_session, bank.devices[0],
                                        bank.modems[1].msisdn, received, arrived)
        try:
            assert await asyncio.to_thread(lambda: modem.imei) == bank.modems[0].imei
            await asyncio.to_thread(modem.sendSms, bank.modems[1].msisdn, LONG_CHINESE)
            [message] = await bank.wait_for_messages(1)
            assert message["text"] == LONG_CHINESE and message["delivered_to"] == "m2"

            await bank.inject("m1", "+8613912345678", "验证码 4711，五分钟内有效")
            assert await asyncio.to_thread(arrived.wait, 10)
            assert received == [("+8613912345678", "验证码 4711，五分钟内有效")]

            ussd = await asyncio.to_thread(modem.sendUssd, "*100#")
            text = ussd.message
            if all(c in "0123456789ABCDEF" for c in text):  # UCS2 charset: hex, as real modems
                text = bytes.fromhex(text).decode("utf-16-be")
            assert "余额为49.80元" in text or "49.80 CNY" in text  # 2 parts at 0.10 each
        finally:
            await asyncio.to_thread(modem.close)
