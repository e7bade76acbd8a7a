"""The bank as users see it: symlinks, bank.json, permissions, the subprocess and the CLI."""

from __future__ import annotations

import asyncio
import fcntl
import grp
import json
import os
import stat
import subprocess
import sys
import termios

import pdu
import pytest
from sim_client import AtPort, info_lines

from simulator import SimulatedBank, SimulatorProcess


async def test_bank_json_and_symlinks(tmp_path):
    async with SimulatedBank(3, tmp_path, personality=["huawei", "zte"], seed=7) as bank:
        document = json.loads((tmp_path / "bank.json").read_text())
        assert [m["name"] for m in document["modems"]] == ["m1", "m2", "m3"]
        assert [m["personality"] for m in document["modems"]] == ["huawei", "zte", "huawei"]
        for entry, info in zip(document["modems"], bank.modems):
            assert set(entry) >= {"name", "device", "imei", "imsi", "iccid", "msisdn",
                                  "operator", "personality"}
            assert entry["device"] == info.device == str(tmp_path / info.name)
            target = os.readlink(entry["device"])
            assert target.startswith("/dev/pts/")
            mode = os.stat(target)
            assert stat.S_IMODE(mode.st_mode) == 0o660
            assert mode.st_gid == grp.getgrnam("dialout").gr_gid
        assert [m["operator"] for m in document["modems"]] == [
            "China Mobile", "China Unicom", "China Telecom"]
        assert bank.devices == [m["device"] for m in document["modems"]]
    assert not any(os.path.lexists(tmp_path / name) for name in ("m1", "m2", "m3", "bank.json"))


async def test_same_seed_same_identities(tmp_path):
    async with SimulatedBank(2, tmp_path / "a", seed=5) as first:
        a = first.modems
    async with SimulatedBank(2, tmp_path / "b", seed=5) as second:
        b = second.modems
    assert [(x.imei, x.imsi, x.iccid) for x in a] == [(y.imei, y.imsi, y.iccid) for y in b]


async def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown modem personality 'nokia'"):
        SimulatedBank(1, tmp_path, personality="nokia")
    with pytest.raises(ValueError, match="unknown modem"):
        async with SimulatedBank(1, tmp_path, faults={"m9": {"hang": {}}}):
            pass
    async with SimulatedBank(1, tmp_path) as bank:
        with pytest.raises(ValueError, match="no simulated SIM or modem called 'm7'"):
            await bank.inject("m7", "+8613912345678", "x")


async def test_port_survives_clients_and_exclusive_mode_is_cleared(bank):
    first = AtPort(bank.devices[0])
    fcntl.ioctl(first.serial.fileno(), termios.TIOCEXCL)  # as gammu does
    assert await first.command("AT") == b"AT\r\r\nOK\r\n"
    first.close()
    bank._clear_exclusivity()  # the fallback timer's work where inotify is missing
    flag = bytearray(4)
    fcntl.ioctl(bank._ports["m1"].slave, 0x80045440, flag)  # Linux TIOCGEXCL
    assert int.from_bytes(flag, sys.byteorder) == 0
    second = AtPort(bank.devices[0])
    try:
        assert await second.command("AT") == b"AT\r\r\nOK\r\n"
    finally:
        second.close()


async def test_simulator_process_and_its_control_socket(tmp_path):
    async with SimulatorProcess(tmp_path, modems=2, seed=3,
                                faults=["m2:cms_error:code=42"]) as sim:
        assert [m.name for m in sim.modems] == ["m1", "m2"]
        assert "m1" in sim.output[0] and sim.modems[0].msisdn in sim.output[0]
        await sim.inject("m1", "+8613912345678", "from the outside")
        port = AtPort(sim.devices[0])
        try:
            await port.command("ATE0")
            listing = info_lines(await port.command("AT+CMGL=4"))
            assert len(listing) == 2
        finally:
            port.close()
        log = sim.network_log()
        assert log[-1]["kind"] == "inbound" and log[-1]["text"] == "from the outside"
        with pytest.raises(ValueError, match="unknown fault"):
            await sim.set_fault("m1", "melt")
        status = await sim.stop()
    assert status == 0
    assert not os.path.lexists(tmp_path / "m1") and not os.path.exists(tmp_path / "control.sock")


def _cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "sim", *args], capture_output=True,
                          text=True, timeout=timeout)


async def test_cli_start_inject_fault_log(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "sim", "start", "--modems", "2", "--dir", str(tmp_path),
        "--personality", "quectel", "--seed", "9",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        lines = []
        async with asyncio.timeout(20):
            while not (lines and lines[-1].startswith("simulator ready")):
                lines.append((await process.stdout.readline()).decode())
                assert lines[-1], "".join(lines)
        assert lines[0].startswith("m1  ") and "+8613800000001" in lines[0]
        injected = await asyncio.to_thread(
            _cli, "inject", "--dir", str(tmp_path), "--to", "+8618600000002",
            "--from", "+8613912345678", "你好，模拟器")
        assert injected.returncode == 0 and "1 part" in injected.stdout
        faulted = await asyncio.to_thread(_cli, "fault", "--dir", str(tmp_path), "m1",
                                          "cms_error", "code=500")
        assert faulted.returncode == 0, faulted.stderr
        bad = await asyncio.to_thread(_cli, "fault", "--dir", str(tmp_path), "m1", "melt")
        assert bad.returncode != 0 and "unknown fault" in bad.stderr
        hung = await asyncio.to_thread(_cli, "fault", "--dir", str(tmp_path), "m2", "hang")
        assert hung.returncode == 0
        cleared = await asyncio.to_thread(_cli, "fault", "--dir", str(tmp_path), "m2", "--clear")
        assert cleared.returncode == 0 and "cleared all faults" in cleared.stdout
        port = AtPort(str(tmp_path / "m1"))
        try:
            await port.command("ATE0")
            part = pdu.encode_submit("+8615000000002", "hi")[0]
            assert await port.command(f"AT+CMGS={part.tpdu_length}") == b"\r\n> "
            reply = await port.send(part.hex.encode() + b"\x1a")
            assert reply == b"\r\n+CMS ERROR: 500\r\n"
        finally:
            port.close()
        other = AtPort(str(tmp_path / "m2"))
        try:
            assert await other.command("AT") == b"AT\r\r\nOK\r\n"  # no longer hung
        finally:
            other.close()
        logged = await asyncio.to_thread(_cli, "log", "--dir", str(tmp_path), "--json")
        entries = [json.loads(line) for line in logged.stdout.splitlines()]
        assert entries == [entries[0]] and entries[0]["text"] == "你好，模拟器"
        assert entries[0]["to"] == "+8618600000002"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    assert process.returncode == 0
    assert not os.path.lexists(tmp_path / "m1")
    down = await asyncio.to_thread(_cli, "log", "--dir", str(tmp_path))
    assert down.returncode != 0 and "no simulator is running" in down.stderr


async def test_without_a_directory_a_temporary_one_is_used_and_removed():
    async with SimulatedBank(1) as bank:
        directory = bank.directory
        assert os.readlink(bank.devices[0]).startswith("/dev/pts/")
    assert not directory.exists()


async def test_log_follow_streams_new_entries(bank):
    from simulator.control import ControlServer, read_log

    control = ControlServer(bank)
    await control.start()
    try:
        await bank.inject("m1", "+8613912345678", "before")
        stream = read_log(bank.directory, follow=True)
        assert (await anext(stream))["text"] == "before"
        await bank.inject("m2", "+8613912345678", "after")
        async with asyncio.timeout(5):
            entry = await anext(stream)
        assert entry["text"] == "after" and entry["delivered_to"] == "m2"
        await stream.aclose()
    finally:
        await control.stop()


async def test_realistic_timings_come_from_the_personality(tmp_path):
    async with SimulatedBank(1, tmp_path, personality="quectel", realistic=True) as bank:
        assert bank.modem("m1").sms_delay() == 2.0
        assert bank.modem("m1").command_delay() == 0.02
    async with SimulatedBank(1, tmp_path, personality="quectel") as bank:
        assert bank.modem("m1").sms_delay() == 0.0 and bank.modem("m1").command_delay() == 0.0


def test_cli_start_rejects_a_bad_personality(tmp_path):
    result = _cli("start", "--dir", str(tmp_path), "--personality", "nokia")
    assert result.returncode != 0 and "unknown modem personality 'nokia'" in result.stderr
