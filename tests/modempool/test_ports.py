"""Port ownership: the UUCP lock file, stale locks, who holds a device open; the daemon as the
one owner of its ports, and `probe` pointing at the daemon instead of competing with it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modempool.box.ports import (Holder, PortBusy, PortLock, ensure_free, lock_holder, lock_path,
                                 port_holders)
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            modempool_cli, write_config)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_the_lock_is_named_after_the_device_and_holds_our_pid(tmp_path):
    device = tmp_path / "ttyUSB7"
    device.touch()
    link = tmp_path / "by-path-port0"
    link.symlink_to(device)
    assert lock_path(str(link), tmp_path) == lock_path(str(device), tmp_path)
    assert lock_path("/dev/ttyUSB0", tmp_path).name == "LCK..ttyUSB0"
    assert lock_path("/dev/pts/3", tmp_path).name == "LCK..pts_3"
    with PortLock(str(link), tmp_path) as lock:
        assert lock.path.read_text() == f"{os.getpid():10d}\n"     # HDB UUCP: ten columns
        assert lock_holder(str(device), tmp_path).pid == os.getpid()
    assert not lock.path.exists()


def test_a_second_opener_is_refused_clearly_and_a_stale_lock_is_taken_over(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = lock_path("/dev/ttyUSB0", tmp_path)
        path.write_text(f"{sleeper.pid:10d}\n")
        with pytest.raises(PortBusy) as refused:
            PortLock("/dev/ttyUSB0", tmp_path).acquire()
        assert f"in use by pid {sleeper.pid}" in str(refused.value)
        assert "close that program first" in str(refused.value)
        with pytest.raises(PortBusy):
            ensure_free("/dev/ttyUSB0", tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    path.write_text(f"{dead_pid():10d}\n")                          # its process is gone
    assert lock_holder("/dev/ttyUSB0", tmp_path) is None
    with PortLock("/dev/ttyUSB0", tmp_path):
        assert path.read_text().strip() == str(os.getpid())
    path.write_text("garbage\n")                                    # unreadable: stale too
    with PortLock("/dev/ttyUSB0", tmp_path):
        pass


def test_the_holders_of_a_device_are_read_from_proc(tmp_path):
    master, slave = os.openpty()
    try:
        assert Holder(os.getpid(), "") in [Holder(h.pid, "") for h in port_holders(os.ttyname(slave))]
        assert port_holders(os.ttyname(slave), proc=tmp_path) == []  # an empty /proc: nobody
    finally:
        os.close(master)
        os.close(slave)


@pytest.fixture(autouse=False)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


@pytest.mark.timeout(60)
async def test_the_daemon_owns_its_ports_and_probe_points_at_the_daemon(tmp_path, no_leftover_daemons,
                                                                         uucp_lock_dir):
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=3) as bank:
        config = write_config(tmp_path / "pool.toml", bank.devices)
        daemon = await DaemonProcess(config).start()
        lock = lock_path(bank.devices[0])
        assert lock.parent == uucp_lock_dir
        assert int(lock.read_text()) == daemon.proc.pid
        with pytest.raises(PortBusy) as refused:                    # a second opener
            PortLock(bank.devices[0]).acquire()
        assert refused.value.holder.is_modempool

        probed = modempool_cli("probe", bank.devices[0])
        assert probed.returncode == 1
        assert "driven by the running modempool daemon" in probed.stderr
        assert "modempool ussd SIM CODE" in probed.stderr and "Traceback" not in probed.stderr

        await daemon.stop()
        assert not lock.exists()                                    # released at a graceful stop
        probed = await asyncio.to_thread(modempool_cli, "probe", bank.devices[0])  # the bank answers
        assert probed.returncode == 0, probed.stderr

        daemon = await DaemonProcess(config).start()
        await daemon.kill()                                         # kill -9 leaves a stale lock
        assert lock.exists()
        daemon = await DaemonProcess(config).start()                # which the next run takes
        assert int(lock.read_text()) == daemon.proc.pid
        await daemon.stop()


@pytest.mark.timeout(60)
async def test_a_port_locked_by_another_program_is_down_with_its_name(tmp_path, no_leftover_daemons):
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=4) as bank:
        minicom = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            lock_path(bank.devices[1]).write_text(f"{minicom.pid:10d}\n")
            config = write_config(tmp_path / "pool.toml", bank.devices)
            daemon = await DaemonProcess(config).start()
            from modempool.spool import Spool

            spool = Spool(tmp_path / "spool.db")
            row = await eventually(lambda: spool.sim("m2"), what="m2 recorded")
            assert row["state"] == "down" and f"pid {minicom.pid}" in row["last_error"]
            assert spool.sim("m1")["state"] == "up"
            minicom.kill()
            minicom.wait()
            await eventually(lambda: spool.sim("m2")["state"] == "up", what="m2 up once free")
            await daemon.stop()
        finally:
            minicom.kill()
            minicom.wait()
