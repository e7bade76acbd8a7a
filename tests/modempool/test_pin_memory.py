"""A wrong PIN in the config must not lock the SIM through restarts: the refusal is remembered
in the spool (by ICCID) and the PIN is never entered again until the config changes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modempool.dispatch.liveness import sim_note
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            write_config)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


async def test_a_refused_pin_is_never_entered_again_across_restarts(tmp_path: Path):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=5) as bank:
        bank.set_fault("m1", "pin_locked", pin="1234")
        sim = bank.modem("m1").sim
        config = write_config(tmp_path / "pool.toml", bank.devices, modems={"m1": {"pin": "0000"}})
        spool = Spool(tmp_path / "spool.db")
        for _ in range(4):                      # systemd restarting the daemon
            daemon = await DaemonProcess(config).start()
            await eventually(lambda: (spool.sim("m1") or {}).get("state") == "locked")
            note = sim_note(spool.sim("m1"))                    # what `status` shows
            assert note.startswith("PIN refused: fix the config") and "2 attempt(s) left" in note
            assert await daemon.stop() == 0
        assert sim.pin_attempts == 2 and sim.pin_state.value == "SIM PIN"   # tried once only
        refusal = spool.pin_refusal_of("m1")
        assert refusal["sim_key"] == f"iccid:{sim.iccid}" and refusal["attempts_left"] == 2
        assert "0000" not in str(spool.db.execute("SELECT * FROM refused_pins").fetchall())
        assert "0000" not in daemon.log.read_text()

        fixed = write_config(tmp_path / "pool.toml", bank.devices, modems={"m1": {"pin": "1234"}})
        daemon = await DaemonProcess(fixed).start()
        await eventually(lambda: spool.sim("m1")["state"] == "up", what="up with the new PIN")
        assert await daemon.stop() == 0
        assert spool.db.execute("SELECT count(*) FROM refused_pins").fetchone()[0] == 0
        assert sim.pin_state.value == "READY" and sim.pin_attempts == 3
