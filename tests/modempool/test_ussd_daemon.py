"""USSD through the running daemon: `modempool ussd SIM CODE` and `Pool.ussd`, while the daemon
owns every port."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from modempool import Pool
from modempool.dispatch.requests import DaemonNotRunning, RequestFailed
from modempool.errors import PoolError
from modempool.spool import Spool
from modempool.web.console.errors import describe
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, kill_leftovers, modempool_cli,
                                            write_config)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


@pytest.fixture
async def bank(tmp_path: Path):
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=7) as bank:
        yield bank


async def cli(*args: str, config: Path) -> tuple[int, str, str]:
    """The command in a subprocess while the test's loop keeps the simulated bank answering."""
    done = await asyncio.to_thread(modempool_cli, *args, config=config)
    return done.returncode, done.stdout, done.stderr


async def test_ussd_runs_through_the_running_daemon(tmp_path, bank):
    bank.modem("m1").sim.balance = 12.34
    bank.set_fault("m2", "no_registration")
    config = write_config(tmp_path / "pool.toml", bank.devices, retry={"quarantine_seconds": 600})

    code, out, err = await cli("ussd", "m1", "*100#", config=config)   # no daemon yet
    assert code == 1 and "daemon not running" in err and "modempool run" in err
    assert "Traceback" not in err

    daemon = await DaemonProcess(config).start()
    code, out, err = await cli("ussd", "m1", "*100#", config=config)
    assert code == 0, err
    assert out.strip() == "Your balance is 12.34 CNY."

    code, out, err = await cli("ussd", "m1", "*100#", "--json", config=config)
    assert json.loads(out)["text"] == "Your balance is 12.34 CNY." and json.loads(out)["sim"] == "m1"

    with Pool.open(config) as pool:                  # the library call the HTTP API makes
        answer = await asyncio.to_thread(pool.ussd, "m1", "*100#")
        assert answer.text == "Your balance is 12.34 CNY."
        with pytest.raises(RequestFailed, match="SIM m2 is quarantined .*not registered") as down:
            await asyncio.to_thread(pool.ussd, "m2", "*100#")
        assert describe(down.value, "zh_CN").startswith(   # the console's words, the daemon's why
            "在 m2 上执行 USSD *100# 失败：SIM m2 is quarantined")
        with pytest.raises(PoolError, match="no modem named m9"):
            pool.ussd("m9", "*100#")
        with pytest.raises(PoolError, match="not a USSD code"):
            pool.ussd("m1", "100; rm -rf /")

    code, out, err = await cli("ussd", "m2", "*100#", config=config)
    assert code == 1 and "quarantined" in err and "Traceback" not in err

    await daemon.stop()
    with Pool.open(config) as pool:
        with pytest.raises(DaemonNotRunning):
            pool.ussd("m1", "*100#")
    spool = Spool(tmp_path / "spool.db")                 # every request has its outcome
    assert [spool.requests.get(i)["state"] for i in range(1, 6)] == ["done", "done", "done", "failed",
                                                                "failed"]
