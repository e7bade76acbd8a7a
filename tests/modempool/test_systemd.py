"""The systemd unit (checked with `systemd-analyze verify`, no running systemd needed), the
daemon's notify protocol (READY, WATCHDOG, STOPPING) on a socket the test holds, and a graceful
stop that finishes the message in flight within the unit's TimeoutStopSec."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from modempool.box import systemd
from modempool.box.notify import watchdog_interval
from modempool.config import load_config
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, NotifySocket, eventually,
                                            kill_leftovers, modempool_cli, network_messages,
                                            write_config)
from tests.programs import require_program

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def written_config(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "modempool.toml"
    path.parent.mkdir()
    path.write_text(f'[spool]\npath = "{tmp_path}/var/modempool.db"\n[[modem]]\nname = "m1"\n'
                    'port = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1.2:1.0-port0"\n')
    return path


def test_the_unit_passes_systemd_analyze_verify_and_is_hardened(tmp_path):
    require_program("systemd-analyze")
    config = written_config(tmp_path)
    printed = modempool_cli("systemd-unit", config=config)
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout
    for line in ("Type=notify", "WatchdogSec=60", "Restart=on-failure", "User=modempool",
                 "SupplementaryGroups=dialout", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw",
                 f"ReadWritePaths={tmp_path}/var /run/lock", "TimeoutStopSec=90",
                 f"--config {config}"):
        assert line in text, line
    unit = tmp_path / systemd.UNIT_NAME
    unit.write_text(text)
    ok, said = systemd.verify(unit)
    assert ok, said
    unit.write_text(text.replace("DeviceAllow=", "DeviceAlow=", 1))   # the check can fail
    ok, said = systemd.verify(unit)
    assert not ok and "DeviceAlow" in said

    installed = modempool_cli("systemd-unit", "--install", "--unit-dir", str(tmp_path / "units"),
                              config=config)
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "units" / systemd.UNIT_NAME).read_text() == text
    assert "systemctl enable --now modempool" in installed.stdout


async def test_notify_ready_watchdog_and_a_graceful_stop_within_timeout_stop_sec(tmp_path):
    async with (SimulatedBank(modems=1, directory=tmp_path / "bank", seed=2) as bank,
                NotifySocket(tmp_path / "notify.sock") as sock):
        received = sock.received
        config = write_config(tmp_path / "pool.toml", bank.devices)
        stop_timeout = int(re.search(r"TimeoutStopSec=(\d+)", systemd.unit(
            systemd.settings_for(load_config(config)))).group(1))
        daemon = await DaemonProcess(config, env={"NOTIFY_SOCKET": str(sock.path),
                                                  "WATCHDOG_USEC": "2000000"}).start()
        await eventually(lambda: "READY=1" in received, what="READY=1")
        assert any(line.startswith("STATUS=pool ready: 1 of 1") for line in received)
        await eventually(lambda: received.count("WATCHDOG=1") >= 2, what="watchdog pings")

        bank.set_fault("m1", "sms_latency", seconds=2.0)       # a slow send in flight
        spool = Spool(tmp_path / "spool.db")
        message = spool.enqueue("+8613800138000", "在途的短信")
        await eventually(lambda: spool.parts(message.id), what="the PDU being written")
        async with asyncio.timeout(stop_timeout):                # what systemd would allow
            assert await daemon.stop(timeout=stop_timeout) == 0
        assert spool.get(message.id).state.value in ("sent", "delivered")
        assert [m["text"] for m in network_messages(bank)] == ["在途的短信"]
        await eventually(lambda: "STOPPING=1" in received, what="STOPPING=1")


async def test_the_watchdog_is_told_the_loop_turns_while_the_database_does_not_answer(tmp_path):
    """A commit that waits (here another writer holds the spool's lock; on PostgreSQL a
    synchronous standby gone) stops the heartbeat, not the pings: systemd must not kill and
    restart a daemon whose modems wait for the database, leaving their parts in flight
    ambiguous."""
    async with (SimulatedBank(modems=1, directory=tmp_path / "bank", seed=3) as bank,
                NotifySocket(tmp_path / "notify.sock") as sock):
        config = write_config(tmp_path / "pool.toml", bank.devices)
        daemon = await DaemonProcess(config, env={"NOTIFY_SOCKET": str(sock.path),
                                                  "WATCHDOG_USEC": "1000000"}).start()
        await eventually(lambda: "READY=1" in sock.received, what="READY=1")
        writer = sqlite3.connect(tmp_path / "spool.db", timeout=60, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")     # the daemon's writes (its heartbeat) wait 30 s
        pings = sock.received.count("WATCHDOG=1")
        await eventually(lambda: sock.received.count("WATCHDOG=1") >= pings + 4,
                         what="watchdog pings while the spool's lock is held")
        writer.execute("ROLLBACK")
        writer.close()
        assert await daemon.stop() == 0


def test_a_watchdog_interval_of_nothing_is_no_watchdog():
    """systemd's WATCHDOG_USEC=0 (or junk) means no watchdog: no pings, not pings without pause."""
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    for usec in ("0", "-5", "soon", ""):
        assert watchdog_interval({"WATCHDOG_USEC": usec}) is None, usec
