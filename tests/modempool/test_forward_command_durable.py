"""The forward command (`run_on_receive`) is the last step of a received SMS's hooks: pending in
the spool until its final outcome is recorded. A real daemon SIGKILLed while the command runs
(its hooks' transaction committed, no outcome recorded) runs it again at its next start, with
the same MODEMPOOL_INBOUND_ID; once its outcome is recorded it never runs again. Both engines.
The old code started the command after the hooks' commit with nothing pending: the kill lost it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from modempool.config import load_config
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers, write_config

pytestmark = pytest.mark.timeout(300)

SENDER = "+8613912345678"
OTHER = "+8613812345678"

#: The command: notes each run (the id from its environment, the one in its JSON, its pid),
#: then, while the hold file exists, does not finish (a slow command, killed by the test).
COMMAND = """
import json, os, pathlib, sys, time
payload = json.load(sys.stdin)
runs, hold = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with runs.open("a") as out:
    out.write(f"{os.environ.get('MODEMPOOL_INBOUND_ID', '-')} {payload['id']} {os.getpid()}\\n")
while hold.exists():
    time.sleep(0.05)
"""


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


#: A command that always fails; its third run overall, while the hold file exists, does not
#: finish first (killed with the daemon).
FAILING = """
import json, os, pathlib, sys, time
payload = json.load(sys.stdin)
runs, hold = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with runs.open("a") as out:
    out.write(f"{payload['id']} {os.getpid()}\\n")
if len(runs.read_text().splitlines()) == 3:
    while hold.exists():
        time.sleep(0.05)
sys.exit(1)
"""


def _config(tmp_path: Path, target, devices: list[str], command_text: str = COMMAND,
            forward: str = "retries = 0") -> Path:
    script = tmp_path / "on_sms.py"
    script.write_text(command_text, "utf-8")
    command = " ".join(shlex.quote(str(part)) for part in (
        sys.executable, script, tmp_path / "runs.txt", tmp_path / "hold"))
    path = write_config(tmp_path / "pool.toml", devices,
                        extra=f"[forward]\ncommand = {json.dumps(command)}\n{forward}\n")
    if not isinstance(target, Path):
        text = path.read_text("utf-8").replace(
            f'path = "{tmp_path / "spool.db"}"', f"url = {target!r}")
        path.write_text(text, "utf-8")
    return path


def _runs(tmp_path: Path) -> list[list[str]]:
    runs = tmp_path / "runs.txt"
    return [line.split() for line in runs.read_text("utf-8").splitlines()] if runs.exists() else []


def _pending(spool) -> list[tuple[str, int]]:
    return [(r["text"], r["next_hook"]) for r in spool.rows(
        "SELECT i.text, h.next_hook FROM inbound_hooks h JOIN inbound i ON i.id = h.inbound_id "
        "ORDER BY h.inbound_id")]


def _outcomes(spool) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in spool.rows(
        "SELECT inbound_id, outcome FROM forward_log ORDER BY id")]


async def test_a_daemon_killed_while_the_forward_command_runs_runs_it_again_at_its_start(
        tmp_path, spool_target):
    (tmp_path / "hold").touch()
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=5) as bank:
        config = _config(tmp_path, spool_target, bank.devices)
        spool = load_config(config).open_spool()
        daemon = await DaemonProcess(config).start()
        await bank.inject("m1", SENDER, "转发我")
        await eventually(lambda: len(_runs(tmp_path)) == 1, what="the command started")
        [(env_id, json_id, pid)] = _runs(tmp_path)
        # the handlers' transaction committed: only the command's step is left
        assert _pending(spool) == [("转发我", 3)]
        await daemon.kill()
        os.kill(int(pid), signal.SIGKILL)   # the orphaned command, still held
        assert spool.rows("SELECT count(*) FROM forward_log")[0][0] == 0   # no outcome

        (tmp_path / "hold").unlink()
        daemon = await DaemonProcess(config).start()
        await eventually(lambda: _pending(spool) == [], what="the command's step passed")
        [inbound] = spool.inbound.messages()
        assert _outcomes(spool) == [(inbound.id, "ok")]
        assert [run[:2] for run in _runs(tmp_path)] == [[str(inbound.id)] * 2] * 2
        assert env_id == json_id == str(inbound.id)
        await daemon.stop()

        daemon = await DaemonProcess(config).start()   # done: never run again
        await bank.inject("m1", OTHER, "另一条")
        await eventually(lambda: len(_outcomes(spool)) == 2, what="the other SMS's command")
        await daemon.stop()
        other = spool.inbound.messages()[-1]
        assert [run[0] for run in _runs(tmp_path)] == [str(inbound.id)] * 2 + [str(other.id)]
        assert _outcomes(spool) == [(inbound.id, "ok"), (other.id, "ok")]
        assert _pending(spool) == []
        spool.close()


async def test_the_command_s_retries_bound_its_attempts_across_a_kill(tmp_path, spool_target):
    """`retries = 2`: three attempts in all. The command fails twice, and the daemon is killed
    during the third; started again, the daemon runs the one attempt left, numbered 3, and gives
    up. The old code began again at attempt 1: six runs, two of them numbered 1."""
    (tmp_path / "hold").touch()
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=6) as bank:
        config = _config(tmp_path, spool_target, bank.devices, FAILING,
                         "retries = 2\nretry_delay = 0.05")
        spool = load_config(config).open_spool()
        daemon = await DaemonProcess(config).start()
        await bank.inject("m1", SENDER, "转发我")
        await eventually(lambda: len(_runs(tmp_path)) == 3, what="the third attempt running")
        await daemon.kill()
        os.kill(int(_runs(tmp_path)[-1][1]), signal.SIGKILL)   # the orphaned command, held
        attempts = "SELECT attempt, outcome FROM forward_log ORDER BY id"
        assert [tuple(r) for r in spool.rows(attempts)] == [(1, "failed"), (2, "failed")]

        (tmp_path / "hold").unlink()
        daemon = await DaemonProcess(config).start()
        await eventually(lambda: _pending(spool) == [], what="the command's step passed")
        await daemon.stop()
        assert [tuple(r) for r in spool.rows(attempts)] == [
            (1, "failed"), (2, "failed"), (3, "failed"), (3, "gave-up")]
        assert len(_runs(tmp_path)) == 4
        spool.close()
