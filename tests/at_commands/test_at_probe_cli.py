"""`modempool probe` as a real subprocess opening a simulated modem's pty."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from simulator import SimulatedBank
from simulator.network import PinState


async def probe(*arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "probe", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_probe_json_reports_the_modem_identity(bank) -> None:
    code, out, err = await probe(bank.devices[0], "--json")
    assert code == 0, err
    info = json.loads(out)["modem"]
    expected = bank.modems[0]
    assert (info["imei"], info["imsi"], info["iccid"], info["msisdn"]) == (
        expected.imei, expected.imsi, expected.iccid, expected.msisdn)
    assert info["registered"] is True and info["profile"] == "simcom"
    assert info["storage"][0]["total"] == 50


async def test_probe_prints_a_table_for_people(bank) -> None:
    code, out, err = await probe(bank.devices[1])
    assert code == 0, err
    assert f"IMEI          {bank.modems[1].imei}" in out
    assert "registered, home network" in out and "dBm" in out


async def test_probe_send_and_ussd(bank) -> None:
    code, out, err = await probe(bank.devices[0], "--send", bank.modems[1].msisdn, "探针测试",
                                 "--ussd", "*100#", "--json")
    assert code == 0, err
    report = json.loads(out)
    messages = await bank.wait_for_messages(1)
    assert messages[0]["text"] == "探针测试"
    assert messages[0]["message_references"] == report["sent"]["references"]
    assert "balance" in report["ussd"]["reply"].lower()


async def test_probe_no_such_port(tmp_path) -> None:
    code, out, err = await probe(str(tmp_path / "ttyUSB99"))
    assert code != 0 and "cannot open" in err and "ttyUSB99" in err


async def test_probe_something_that_is_not_a_modem() -> None:
    master, slave = os.openpty()  # a terminal nobody answers on
    try:   # every wait for its AT a fifth of the default's
        code, out, err = await probe(os.ttyname(slave), "--answer-wait", "0.2")
    finally:
        os.close(master)
        os.close(slave)
    assert code != 0 and "does not answer AT" in err


@pytest.mark.parametrize("wait", ["0", "nan", "inf"])
async def test_probe_refuses_an_answer_wait_of_no_time(wait) -> None:
    code, out, err = await probe("/dev/null", "--answer-wait", wait)
    assert code == 2 and "--answer-wait" in err and "Traceback" not in err


async def test_probe_pin_needed_and_sim_blocked(tmp_path) -> None:
    faults = {"m1": {"pin_locked": {"pin": "1234"}}}
    async with SimulatedBank(modems=1, directory=tmp_path, seed=2, faults=faults) as bank:
        code, out, err = await probe(bank.devices[0])
        assert code != 0 and "PIN" in err and "--pin" in err
        bank.modem("m1").sim.pin_state = PinState.PUK
        code, out, err = await probe(bank.devices[0], "--pin", "1234")
        assert code != 0 and "puk" in err.lower()
        assert "1234" not in err + out
