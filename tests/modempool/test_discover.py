"""`modempool discover` against simulated banks through `--ports`, the config it writes (which
runs and sends), proposals on a re-run, ports the daemon holds; the udev rules generator."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from modempool.box import udev
from modempool.box.discover import candidate_ports, modem_name
from modempool.config import load_config
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (REPO, DaemonProcess, eventually, kill_leftovers,
                                            modempool_cli)

pytestmark = pytest.mark.timeout(90)

UDEV_LINE = re.compile(
    r'(?:[A-Z_]+(?:\{[A-Za-z_]+\})?(?:==|!=|\+=|-=|:=|=)"(?:[^"\\]|\\.)*"'
    r'(?:,\s*|$))+')


def assert_well_formed_udev(text: str) -> None:
    """Every rule line is KEY[{attr}]OP"value" pairs; GOTOs have their LABEL."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            assert UDEV_LINE.fullmatch(line.strip()), f"line {number} is not a udev rule: {line}"
    for label in re.findall(r'GOTO="([^"]+)"', text):
        assert f'LABEL="{label}"' in text


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


async def cli(*args: str, config: Path | None = None):
    return await asyncio.to_thread(modempool_cli, *args, config=config)


async def test_discover_a_simulated_bank_write_a_config_that_sends_and_propose_only_changes(tmp_path):
    async with SimulatedBank(modems=3, directory=tmp_path / "bank", seed=12,
                             faults={"m3": {"pin_locked": {}}}) as bank:
        found = await cli("discover", "--ports", str(tmp_path / "bank" / "m*"), "--json")
        assert found.returncode == 0, found.stderr
        modems = {m["name"]: m for m in json.loads(found.stdout)["modems"]}
        assert sorted(modems) == ["m1", "m2", "m3"]
        for info in bank.modems:
            assert (modems[info.name]["imei"], modems[info.name]["port"]) == (info.imei, info.device)
        assert modems["m1"]["iccid"] == bank.modems[0].iccid
        assert modems["m1"]["msisdn"] == bank.modems[0].msisdn
        assert modems["m1"]["operator"] == bank.modems[0].operator
        assert (modems["m3"]["sim"], modems["m3"]["imsi"]) == ("pin", None)   # no PIN entered
        assert bank.modem("m3").sim.pin_attempts == 3

        config = tmp_path / "modempool.toml"
        first = await cli("discover", "--ports", str(tmp_path / "bank" / "m[12]"),
                          "--write-config", str(config), "--write-udev", str(tmp_path / "r.rules"))
        assert first.returncode == 0, first.stderr
        assert "+ [[modem]] m1" in first.stdout and "+ [[modem]] m2" in first.stdout
        assert [m.name for m in load_config(config).modems] == ["m1", "m2"]
        assert (tmp_path / "r.rules").read_text() == udev.rules()

        again = await cli("discover", "--ports", str(tmp_path / "bank" / "m[12]"),
                          "--write-config", str(config))
        assert "no change" in again.stdout
        config.write_text(config.read_text() + "\n# my own note\n", encoding="utf-8")
        grown = await cli("discover", "--ports", str(tmp_path / "bank" / "m*"),
                          "--write-config", str(config))
        proposed = [line for line in grown.stdout.splitlines() if line.startswith("+ ")]
        assert proposed == [f"+ [[modem]] m3 = {bank.modems[2].device}"]   # only the change
        assert [m.name for m in load_config(config).modems] == ["m1", "m2", "m3"]
        assert "# my own note" in config.read_text() and "asks for its PIN" in config.read_text()

        config.write_text(config.read_text().replace('name = "m3"', 'name = "m3"\npin = "1234"'))
        daemon = await DaemonProcess(config, cwd=tmp_path).start()
        spool = Spool(tmp_path / "modempool.db")
        sent = spool.enqueue("+8613800138000", "发现之后的第一条短信")
        await eventually(lambda: spool.get(sent.id).state.value in ("sent", "delivered"),
                         what="a message sent through the written config")

        busy = await cli("discover", "--ports", str(tmp_path / "bank" / "m*"), "--json")
        roles = {p["port"]: (p["role"], p["busy_by"]) for p in json.loads(busy.stdout)["ports"]}
        role, why = roles[bank.modems[0].device]
        assert role == "busy" and "modempool daemon" in why            # left alone
        await daemon.stop()


async def test_the_config_discover_writes_is_private_when_new_and_keeps_a_chosen_mode(tmp_path):
    """The written config is where PINs go (and a spool URL's password): a new one is 0600
    whatever the umask (it was 0644 under umask 022); one that exists keeps its mode."""
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=3):
        config = tmp_path / "modempool.toml"
        for ports, mode in (("m1", 0o600), ("m*", 0o640)):
            wrote = await asyncio.to_thread(
                modempool_cli, "discover", "--ports", str(tmp_path / "bank" / ports),
                "--write-config", str(config), umask=0o022)
            assert wrote.returncode == 0 and f"wrote {config}" in wrote.stdout, wrote.stderr
            assert config.stat().st_mode & 0o777 == mode
            config.chmod(0o640)   # a group given read access on purpose
        assert [m.name for m in load_config(config).modems] == ["m1", "m2"]


def test_the_udev_generator_reproduces_the_example_file_and_names_slots(tmp_path):
    example = (REPO / "udev" / "99-modempool.rules").read_text(encoding="utf-8")
    assert udev.rules() == example
    assert_well_formed_udev(example)
    for needed in ('GROUP="dialout", MODE="0660"', 'ENV{ID_MM_DEVICE_IGNORE}="1"',
                   'SYMLINK+="modempool/$env{ID_PATH}"'):
        assert needed in example
    named = udev.rules([("usb-1.2", "pci-0000:00:14.0-usb-0:1.2:1.0")])
    assert_well_formed_udev(named)
    assert 'ENV{ID_PATH}=="pci-0000:00:14.0-usb-0:1.2:1.0", SYMLINK+="modempool/usb-1.2"' in named


def test_ports_by_path_are_named_by_their_usb_slot(tmp_path):
    by_path = tmp_path / "by-path"
    by_path.mkdir()
    (by_path / "pci-0000:00:14.0-usb-0:1.2:1.0-port0").symlink_to("/dev/null")
    [(port, device, usb)] = candidate_ports(by_path=by_path, patterns=())
    assert (device, usb) == ("/dev/null", "pci-0000:00:14.0-usb-0:1.2:1.0")
    taken: set[str] = set()
    assert modem_name(port, usb, taken) == "usb-1.2"
    assert modem_name(port, usb, taken) == "usb-1.2-2"                # unique


def test_udev_command_prints_and_installs_the_rules_for_the_config(tmp_path):
    config = tmp_path / "modempool.toml"
    config.write_text('[spool]\npath = "x.db"\n[[modem]]\nname = "slot1"\n'
                      'port = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1.4:1.0-port0"\n')
    printed = modempool_cli("udev", config=config)
    assert printed.returncode == 0, printed.stderr
    assert 'ENV{ID_PATH}=="pci-0000:00:14.0-usb-0:1.4:1.0", SYMLINK+="modempool/slot1"' in printed.stdout
    installed = modempool_cli("udev", "--install", "--rules-dir", str(tmp_path / "rules.d"),
                              config=config)
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "rules.d" / "99-modempool.rules").read_text() == printed.stdout


def test_one_at_port_per_stick():
    from modempool.box.discover import FoundPort, assign_roles

    stick = "pci-0000:00:14.0-usb-0:1.3:1.{}"
    ports = assign_roles([
        FoundPort("/dev/serial/by-path/a-port0", "/dev/ttyUSB0", stick.format(0), role="at", imei="861"),
        FoundPort("/dev/serial/by-path/b-port0", "/dev/ttyUSB1", stick.format(1), role="silent"),
        FoundPort("/dev/serial/by-path/c-port0", "/dev/ttyUSB2", stick.format(2), role="at", imei="861"),
        FoundPort("/dev/serial/by-path/d-port0", "/dev/ttyUSB3", "pci-0000:00:14.0-usb-0:1.4:1.0",
                  role="at", imei="862")])
    assert [(p.device, p.role, p.name) for p in ports] == [
        ("/dev/ttyUSB0", "at", "usb-1.3"), ("/dev/ttyUSB1", "silent", ""),
        ("/dev/ttyUSB2", "other", ""), ("/dev/ttyUSB3", "at", "usb-1.4")]
