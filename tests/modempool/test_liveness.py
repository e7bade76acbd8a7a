"""Daemon liveness: the heartbeat in the spool, and what `status` makes of it."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from modempool.dispatch.liveness import daemon_liveness
from modempool.spool import Spool, utcnow
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            modempool_cli, write_config)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def test_liveness_judged_from_the_heartbeat(tmp_path):
    spool = Spool(tmp_path / "s.db")
    assert daemon_liveness(spool, stale_after=30).running is False
    assert "never ran" in daemon_liveness(spool, stale_after=30).describe()
    now = utcnow().replace(microsecond=0)  # the spool keeps milliseconds
    spool.beat("far:1", host="far-away-host", pid=1, started_at=now - timedelta(hours=1),
               now=now - timedelta(seconds=10))
    assert daemon_liveness(spool, stale_after=30, now=now).running is True            # another host, fresh
    stale = daemon_liveness(spool, stale_after=30, now=now + timedelta(seconds=60))
    assert (stale.running, stale.reason) == (False, "silent")
    assert stale.since == now - timedelta(seconds=10)
    assert "daemon not running since" in stale.describe()
    spool.daemon_stopped("far:1", now=now)
    stopped = daemon_liveness(spool, stale_after=30, now=now)
    assert (stopped.running, stopped.reason, stopped.since) == (False, "stopped", now)


def test_a_dead_process_on_this_host_is_not_running_even_with_a_fresh_heartbeat(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(gone.stdout)
    spool = Spool(tmp_path / "s.db")
    host = socket.gethostname()
    spool.beat(f"{host}:{pid}", host=host, pid=pid, started_at=utcnow())
    judged = daemon_liveness(spool, stale_after=30)
    assert (judged.running, judged.reason) == (False, "killed")


@pytest.fixture
async def bank(tmp_path: Path):
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=16) as bank:
        yield bank


def status(config: Path) -> dict:
    result = modempool_cli("status", "--json", config=config)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_status_after_kill_9_says_the_daemon_is_not_running_and_shows_no_sim_up(tmp_path, bank):
    bank.set_fault("m2", "no_registration")
    config = write_config(tmp_path / "pool.toml", bank.devices, retry={"quarantine_seconds": 600})
    daemon = await DaemonProcess(config).start()
    live = status(config)
    assert live["daemon"]["running"] is True
    sims = {s["name"]: s for s in live["sims"]}
    assert sims["m1"]["state"] == "up"
    numbers = {info.name: info.msisdn for info in bank.modems}
    assert sims["m1"]["msisdn"] == numbers["m1"]                   # the SIM's own number
    assert sims["m2"]["state"] == "quarantined"
    assert "not registered" in sims["m2"]["last_error"] and sims["m2"]["quarantined_until"]

    human = modempool_cli("status", config=config).stdout
    assert "daemon running since" in human and numbers["m1"] in human
    assert "not registered" in human and "until" in human          # why, and until when

    await daemon.kill()                                            # SIGKILL: no goodbye
    dead = status(config)
    assert dead["daemon"]["running"] is False and dead["daemon"]["reason"] == "killed"
    assert {s["state"] for s in dead["sims"]} == {"unknown"}
    assert {s["name"]: s["last_state"] for s in dead["sims"]} == {"m1": "up", "m2": "quarantined"}
    human = modempool_cli("status", config=config).stdout
    assert "daemon not running since" in human
    shown_states = [line.split("│")[2].strip() for line in human.splitlines()
                    if line.startswith("│ m")]
    assert shown_states == ["unknown", "unknown"]


async def test_a_graceful_stop_is_recorded(tmp_path, bank):
    config = write_config(tmp_path / "pool.toml", bank.devices)
    daemon = await DaemonProcess(config).start()
    assert await daemon.stop() == 0
    judged = status(config)["daemon"]
    assert (judged["running"], judged["reason"]) == (False, "stopped")


CASES = ["stopped, its pid reused", "here, late heartbeat", "here, gone", "far, fresh",
         "far, silent", "same hostname elsewhere, its pid not here", "same hostname elsewhere, silent",
         "old format, here, gone", "old format, far, fresh", "old format, far, silent"]


@pytest.mark.parametrize("case", CASES)
def test_status_and_lease_recovery_judge_a_daemon_dead_by_one_rule(tmp_path, case):
    """`status` (daemon_liveness) and the settling of run-out leases (dead_owners) ask the same
    rule: a daemon whose leases may be taken is one that status shows as not running. In this
    process table (this boot and pid namespace) the process decides (a late heartbeat is a slow
    database, not a dead daemon); elsewhere the heartbeat, even under this very hostname (a
    cloned box, a container). Owners written before places (`host:pid`) are placed by hostname."""
    import os
    import subprocess
    import sys

    from modempool.box.ports import process_exists
    from modempool.dispatch.liveness import this_place
    from modempool.dispatch.liveness import here
    from modempool.spool.daemons import by_age, run_owner
    from modempool.spool.recovery import dead_owners

    name, place = socket.gethostname(), this_place()
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    now = utcnow().replace(microsecond=0)
    host, where, pid, beat_age, stopped, expected_dead = {
        "stopped, its pid reused": (name, place, os.getpid(), 1, True, True),
        "here, late heartbeat": (name, place, os.getpid(), 120, False, False),
        "here, gone": (name, place, gone, 1, False, True),
        "far, fresh": ("far-away-host", "0f0f0f0f", 7, 1, False, False),
        "far, silent": ("far-away-host", "0f0f0f0f", 7, 120, False, True),
        "same hostname elsewhere, its pid not here": (name, "0f0f0f0f", gone, 1, False, False),
        "same hostname elsewhere, silent": (name, "0f0f0f0f", os.getpid(), 120, False, True),
        "old format, here, gone": (name, None, gone, 1, False, True),
        "old format, far, fresh": ("far-away-host", None, 7, 1, False, False),
        "old format, far, silent": ("far-away-host", None, 7, 120, False, True)}[case]
    owner = f"{host}:{pid}" if where is None else run_owner(host, pid, where, "a1b2c3")
    with Spool(tmp_path / "s.db") as spool:
        spool.beat(owner, host=host, pid=pid, started_at=now - timedelta(hours=1),
                   now=now - timedelta(seconds=beat_age))
        if stopped:
            spool.daemon_stopped(owner, now=now - timedelta(seconds=beat_age))
        message = spool.enqueue("13800138000", "hi")
        assert spool.claim(message.id, "m1", f"{owner}/m1", 1, now=now - timedelta(seconds=60))
        shown = daemon_liveness(spool, stale_after=30, now=now)
        settled = dead_owners(spool.engine, here=here(), alive=process_exists,
                              silent=by_age(now, 30), now=now)
    assert (not shown.running, f"{owner}/m1" in settled) == (expected_dead, expected_dead)


def test_a_heartbeat_watch_judges_silence_only_by_its_own_unbroken_looking():
    """A daemon elsewhere is silent once its heartbeat stood still through a whole window of
    looks; a moved heartbeat, a failed look (the database away) or too long between looks
    starts the clock again, so after an outage for everyone nobody is silent at once."""
    from modempool.spool.daemons import HeartbeatWatch

    moment = [0.0]
    watch = HeartbeatWatch(30, gap=15, clock=lambda: moment[0])
    row = {"owner": "box:7:0f0f0f0f-a1b2c3", "heartbeat_at": "t1"}

    def look_at(t: float, heartbeat: str | None = None) -> bool:
        moment[0] = t
        if heartbeat:
            row["heartbeat_at"] = heartbeat
        watch.look(lambda: [dict(row)])
        return watch.silent(dict(row))

    assert [look_at(t) for t in (0, 10, 20)] == [False, False, False]
    assert look_at(30) is True                           # stood still for 30 s of looking
    assert look_at(35, "t2") is False                    # it moved: alive again
    assert [look_at(t) for t in (45, 55, 65)] == [False, False, True]  # still from 35 to 65

    def away() -> list[dict]:
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        watch.look(away)                                 # an outage: sight lost
    assert watch.silent(dict(row)) is False
    assert [look_at(t) for t in (200, 210, 220)] == [False, False, False]  # t2 still, yet
    assert look_at(230) is True                          # a whole window after sight came back
    assert look_at(300) is False                         # 70 s since the last look: a gap
    assert [look_at(t) for t in (310, 320, 330)] == [False, False, True]
    never_beat = {"owner": "box:8:0f0f0f0f-d4e5f6", "heartbeat_at": None}
    assert watch.silent(never_beat) is True              # 30 s of unbroken looking at 330
def test_status_shows_each_daemon_running_on_a_shared_spool(tmp_path):
    """Two boxes on one queue: status names both (host, pid, start, heartbeat age), not one;
    a box silent past the rule is not among them."""
    import json
    import subprocess
    import sys
    from datetime import datetime, timedelta, timezone

    from modempool.spool import Spool

    now = datetime.now(timezone.utc)
    with Spool(tmp_path / "pool.db") as spool:
        spool.beat("box-a:1728", host="box-a", pid=1728, started_at=now - timedelta(hours=2))
        spool.beat("box-b:4242", host="box-b", pid=4242, started_at=now - timedelta(hours=1))
        spool.beat("box-c:99", host="box-c", pid=99, started_at=now - timedelta(hours=3),
                   now=now - timedelta(minutes=5))   # silent: not running
    config = tmp_path / "pool.toml"
    config.write_text('[spool]\npath = "pool.db"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n',
                      encoding="utf-8")
    shown = subprocess.run([sys.executable, "-m", "cli", "status", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "2 daemons running:"
    assert lines[1].startswith("  daemon on box-a (pid 1728) running since ")
    assert lines[2].startswith("  daemon on box-b (pid 4242) running since ")
    assert all("heartbeat " in line and " s ago" in line for line in lines[1:3])
    as_json = json.loads(subprocess.run(
        [sys.executable, "-m", "cli", "status", "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=60).stdout)
    assert [(d["host"], d["pid"]) for d in as_json["daemons"]] == [("box-a", 1728),
                                                                    ("box-b", 4242)]


@pytest.mark.parametrize(("silent_after", "beat_age", "running"),
                         [(120, 45, True), (10, 20, False)], ids=["patient", "quick"])
def test_a_ussd_request_judges_the_daemon_by_silent_after_as_status_does(
        tmp_path, silent_after, beat_age, running):
    """`[pool] silent_after`, not a constant of its own: a daemon elsewhere whose heartbeat is
    45 s old still runs when silence is 120 s (the request is filed and waits for it), and one
    20 s old is silent when silence is 10 s (refused at once, as `status` says)."""
    from modempool import Pool
    from modempool.dispatch.requests import DaemonNotRunning, RequestFailed

    path = tmp_path / "pool.toml"
    path.write_text(f'[pool]\nsilent_after = {silent_after}\n[spool]\npath = "spool.db"\n'
                    '[[modem]]\nname = "m1"\nport = "/dev/null"\n', "utf-8")
    with Pool.open(path) as pool:
        now = utcnow()
        pool.spool.beat("far:7", host="far-away-host", pid=7, started_at=now - timedelta(hours=1),
                        now=now - timedelta(seconds=beat_age))
        assert pool.status().daemon.running is running
        if running:
            with pytest.raises(RequestFailed, match="no answer within 0 s"):
                pool.ussd("m1", "*100#", timeout=0)
            assert pool.spool.requests.get(1)["state"] == "failed"   # filed, then withdrawn
        else:
            with pytest.raises(DaemonNotRunning, match="no heartbeat"):
                pool.ussd("m1", "*100#", timeout=0)
            assert pool.spool.requests.get(1) is None   # nothing filed
