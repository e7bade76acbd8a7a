"""A live daemon's leases are never taken (issue 18): not after a database outage longer than
the silent window, and not by a daemon that shares its hostname but not its process table (a
cloned box, a container). Real daemons as subprocesses, real PostgreSQL, simulated banks.

The silent window is made short (`[pool] silent_after = 4`) and every lease runs out while its
message is still being sent (`lease_seconds = 1`, slower modems), so a wrong verdict takes
leases at once.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, drained, eventually, kill_leftovers

pytestmark = pytest.mark.timeout(300)

SILENT_AFTER = 4
#: Daemon B in a pid namespace of its own: same hostname, but A's pid means nothing there.
OWN_PID_TABLE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def _config(path: Path, url: str, prefix: str, devices: list[str]) -> Path:
    lines = ["[spool]", f'url = "{url}"', "", "[pool]", "lease_seconds = 1",
             f"silent_after = {SILENT_AFTER}", "", "[retry]", "backoff = 0.2", "backoff_max = 1.0",
             ""]
    for device in devices:
        lines += ["[[modem]]", f'name = "{prefix}{Path(device).name[1:]}"', f'port = "{device}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _sent(*banks: SimulatedBank) -> collections.Counter:
    return collections.Counter(e["text"] for bank in banks for e in bank.network_log()
                               if e["kind"] == "message")


def _taken(spool: Spool) -> list[dict]:
    return [e for e in spool.events() if e["kind"] == "lease-recovered"]


async def _banks(tmp_path: Path, latency: float):
    bank_a = SimulatedBank(modems=2, directory=tmp_path / "a", seed=11)
    bank_b = SimulatedBank(modems=2, directory=tmp_path / "b", seed=12)
    for bank in (bank_a, bank_b):
        await bank.__aenter__()
        for name in ("m1", "m2"):
            bank.set_fault(name, "sms_latency", seconds=latency)
    return bank_a, bank_b


async def test_a_daemon_with_the_same_hostname_in_another_pid_table_takes_only_a_dead_ones_leases(
        tmp_path, pg_cluster):
    """B runs under A's hostname in its own pid namespace (two containers, a cloned box): it
    cannot look A's pid up, so it must not judge A by it. While A lives none of A's leases is
    taken, though each runs out mid-send; once A is killed, B takes them over."""
    url = pg_cluster.new_schema()
    bank_a, bank_b = await _banks(tmp_path, latency=1.5)  # every lease runs out mid-send
    try:
        spool = Spool(url)
        daemon_a = await DaemonProcess(_config(tmp_path / "a.toml", url, "a",
                                               bank_a.devices)).start()
        # its port locks in a directory of its own: killed, it leaves them naming pid 1
        (tmp_path / "locks-b").mkdir()
        daemon_b = await DaemonProcess(_config(tmp_path / "b.toml", url, "b", bank_b.devices),
                                       wrapper=OWN_PID_TABLE,
                                       env={"MODEMPOOL_LOCK_DIR": str(tmp_path / "locks-b")}
                                       ).start()
        texts = [f"only a {i}" for i in range(10)]  # ~8 s of sending: two silent windows
        spool.enqueue_many({"to": "+8613800138000", "text": text, "sims": ["a1", "a2"]}
                           for text in texts)
        def settled() -> int:
            counts = spool.counts()
            return counts["sent"] + counts["delivered"] + counts["ambiguous"]

        await eventually(lambda: settled() == 10, progress=settled, what="A sent its ten")
        assert _taken(spool) == [], daemon_b.output()       # A alive: nothing taken
        assert "took over leases" not in daemon_b.output()
        assert spool.counts()["ambiguous"] == 0
        assert _sent(bank_a, bank_b) == collections.Counter(texts)

        spool.enqueue_many({"to": "+8613800138000", "text": f"then {i}", "sims": ["a1", "a2"]}
                           for i in range(4))
        await eventually(lambda: spool.counts()["sending"] > 0, what="A holding a lease")
        await daemon_a.kill()
        await eventually(lambda: spool.counts()["sending"] == 0,
                         what="B took over the killed A's leases")
        assert _taken(spool)
        await daemon_b.wait_for_log("took over leases of a dead daemon")
        await daemon_b.kill()
        spool.close()
    finally:
        for bank in (bank_a, bank_b):
            await bank.__aexit__(None, None, None)


async def test_a_database_outage_longer_than_the_silent_window_takes_no_live_daemons_lease(
        tmp_path):
    """Both daemons lose PostgreSQL for three silent windows, with messages in flight (their
    leases run out meanwhile). When it is back, each sees the other's old heartbeat; neither
    may take the other's leases before a whole window of watching it stand still, and both
    beat long before: nothing is taken, nothing ambiguous, everything sent once."""
    from tests.pg_cluster import PgCluster, answering

    cluster = PgCluster()  # its own: stopping it must not disturb the session's cluster
    bank_a = bank_b = None
    try:
        cluster.start()
        url = cluster.new_schema()
        bank_a, bank_b = await _banks(tmp_path, latency=0.5)
        daemon_a = await DaemonProcess(_config(tmp_path / "a.toml", url, "a",
                                               bank_a.devices)).start()
        daemon_b = await DaemonProcess(_config(tmp_path / "b.toml", url, "b", bank_b.devices),
                                       env={"MODEMPOOL_PLACE": "box b"}).start()
        # queued once both are up: queued before, a loaded machine let A send all forty
        # (about 10 s) while B was starting, and B never sent
        spool = Spool(url)
        texts = [f"outage {i}" for i in range(40)]
        spool.enqueue_many({"to": "+8613800138000", "text": text} for text in texts)
        spool.close()
        await eventually(lambda: _sent(bank_a) and _sent(bank_b), what="both banks sending")
        cluster.stop()                                    # returns once the server is down
        await asyncio.sleep(3 * SILENT_AFTER)             # the outage: three silent windows
        assert daemon_a.proc.returncode is None and daemon_b.proc.returncode is None
        cluster.start()
        with Spool(url) as spool:
            await drained(spool)
            counts = spool.counts()
        # (a daemon may settle its own leases after the outage: that is no taking over)
        logs = daemon_a.output() + daemon_b.output()
        assert "took over leases" not in logs and "had been taken over" not in logs, logs
        assert counts["ambiguous"] == 0 and counts["failed"] == 0, counts
        assert _sent(bank_a, bank_b) == collections.Counter(texts)  # each once
        assert await daemon_a.stop() == 0 and await daemon_b.stop() == 0
    finally:
        for bank in (bank_a, bank_b):
            if bank is not None:
                await bank.__aexit__(None, None, None)
        cluster.remove()


def test_after_an_outage_for_everyone_a_silent_window_is_watched_before_anything_is_taken(
        tmp_path):
    """The rule of the outage, on a real PostgreSQL stopped and started, step by step (the
    watch's clock is a number the test moves): daemon B elsewhere holds a run-out lease and
    beat 40 s ago, before the outage. After it, the old heartbeat alone takes nothing; a whole
    window of watching it stand still does; a heartbeat within the window keeps the lease."""
    from datetime import timedelta

    from modempool.dispatch.shared import recover_dead
    from modempool.spool import utcnow
    from modempool.spool.daemons import HeartbeatWatch, run_owner
    from tests.pg_cluster import PgCluster, answering

    cluster = PgCluster()
    try:
        cluster.start()
        url = cluster.new_schema()
        moment = [0.0]
        watch = HeartbeatWatch(30, gap=15, clock=lambda: moment[0])
        owner = run_owner("box-b", 4242, "0f0f0f0f", "a1b2c3")
        with Spool(url) as spool:
            kept, taken = spool.enqueue_many({"to": "+8613800138000", "text": t}
                                             for t in ("kept", "taken"))
            before = utcnow() - timedelta(seconds=40)
            for message_id in (kept, taken):
                assert spool.claim(message_id, "b1", f"{owner}/b1", 1, now=before)
            spool.beat(owner, host="box-b", pid=4242, started_at=before, now=before)
            cluster.stop()
            with pytest.raises(Exception):
                recover_dead(spool, watch)                 # the database away: sight lost
            cluster.start()
            answering(spool)
            moment[0] = 100.0
            assert recover_dead(spool, watch).requeued == ()  # a 40 s old heartbeat: not yet
            moment[0] = 115.0
            assert recover_dead(spool, watch).requeued == ()
            moment[0] = 130.0                                # watched still for 30 s: silent
            assert len(recover_dead(spool, watch).requeued) == 2

            assert spool.claim(kept, "b1", f"{owner}/b1", 1, now=before)  # B claims again
            moment[0] = 140.0
            spool.beat(owner, host="box-b", pid=4242, started_at=before)  # B is back
            assert recover_dead(spool, watch).requeued == ()
            moment[0] = 155.0
            assert recover_dead(spool, watch).requeued == ()  # 15 s since it moved
    finally:
        cluster.remove()
