"""SIM names are unique across the boxes sharing a spool (docs/scale-out.md): a daemon run holds
its modem names while it runs (`card_holders.take_names`), and another refuses to start with a
name a live run serves, in one line naming that run's host. A dead run's names are free.

The spool's rule on both engines; then two real daemons on a real PostgreSQL cluster.
"""

from __future__ import annotations

import os

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers

pytestmark = pytest.mark.timeout(300)

A, B = "box-a:101:0000aaaa-r1", "box-b:202:0000bbbb-r2"
TO = "+8613800138000"


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def test_a_name_is_held_by_one_live_run(spool_target):
    with Spool(spool_target) as spool:
        names = spool.card_holders
        assert names.take_names(["a1", "a2"], A, lambda owner: True) == {}
        refused = names.take_names(["b1", "a2"], B, lambda owner: owner == A)   # A lives
        assert {name: (h.owner, h.shown) for name, h in refused.items()} == {
            "a2": (A, "box-a:101")}
        assert [(n["modem"], n["owner"]) for n in names.names()] == [("a1", A), ("a2", A)]
        assert names.take_names(["b1", "a2"], B, lambda owner: False) == {}     # A dead
        assert [(n["modem"], n["owner"]) for n in names.names()] == [
            ("a1", A), ("a2", B), ("b1", B)]
        assert names.take_names(["a2"], B, lambda owner: True) == {}            # its own
        assert names() == []                                   # no card held by a name
        assert names.let_go(B) == 2 and [n["modem"] for n in names.names()] == ["a1"]


def _config(path, url: str, name: str, device: str):
    path.write_text(f'[spool]\nurl = "{url}"\n\n[[modem]]\nname = "{name}"\nport = "{device}"\n',
                    encoding="utf-8")
    return path


async def test_a_second_box_with_a_name_a_live_box_serves_is_refused_until_that_box_is_gone(
        tmp_path, pg_cluster):
    """Box b's config was copied from box a's (modem name a1 on both): b refuses to start, in
    one line naming a's host and pid, and a goes on sending. Once a is killed (its process
    gone from this process table: dead at once), b starts with the name."""
    url = pg_cluster.new_schema()
    async with (SimulatedBank(modems=1, directory=tmp_path / "a", seed=51) as bank_a,
                SimulatedBank(modems=1, directory=tmp_path / "b", seed=52) as bank_b):
        first = await DaemonProcess(_config(tmp_path / "a.toml", url, "a1",
                                            bank_a.devices[0])).start()
        copied = _config(tmp_path / "b.toml", url, "a1", bank_b.devices[0])
        second = await DaemonProcess(copied).start(wait_ready=False)
        await eventually(lambda: second.proc.returncode is not None
                         or "pool ready" in second.output(), what="b refused or started")
        assert second.proc.returncode == 1, second.output()
        said = second.output().strip().splitlines()
        assert said[-1] == (f"Error: modem name a1 is served by another live daemon, "
                            f"{os.uname().nodename}:{first.proc.pid}: SIM names must be unique "
                            "across the boxes sharing a spool (rename it in [[modem]] name, or "
                            "stop that daemon first)"), said
        assert "Traceback" not in second.output()
        with Spool(url) as spool:
            message = spool.enqueue(TO, "a serves on")
            await eventually(lambda: spool.get(message.id).state.value in ("sent", "delivered"),
                             what="a sending")
            assert spool.sim("a1")["port"] == bank_a.devices[0]     # the row is a's alone
            await first.kill()
            await second.start()                                     # the dead run's name
            assert [(n["modem"], n["owner"].split(":")[1]) for n in spool.card_holders.names()
                    ] == [("a1", str(second.proc.pid))]
        assert await second.stop() == 0


async def test_a_run_that_takes_its_names_while_another_starts_is_judged_after_its_commit(
        pg_cluster):
    """rev20b L1: A starts while B, live, beats and takes name b1 in one open transaction. A's
    take waits on B's row; once B commits, A judges B by the heartbeat it reads then, not by
    the one it read before it waited (the old code took B's name over: both ran)."""
    import asyncio
    from datetime import datetime, timezone

    from modempool.dispatch.cards import hold_names
    from modempool.errors import PoolError

    url = pg_cluster.new_schema()
    with Spool(url) as b_spool, Spool(url) as watcher:
        with b_spool.engine.tx():   # B's start: its beat, then its names, one commit
            b_spool.beat(B, host="box-b", pid=202, started_at=datetime.now(timezone.utc))
            assert b_spool.card_holders.take_names(["b1"], B, lambda owner: False) == {}
            a_start = asyncio.create_task(asyncio.to_thread(
                lambda: _hold_names_in_own_spool(url, hold_names)))
            waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND query LIKE 'INSERT INTO%sim_holders%'")
            await eventually(lambda: watcher.rows(waiting)[0][0] == 1, what="A waiting on B")
        with pytest.raises(PoolError, match="modem name b1 is served by another live daemon, "
                                            "box-b:202"):
            await a_start
        assert [(n["modem"], n["owner"]) for n in watcher.card_holders.names()] == [("b1", B)]


def _hold_names_in_own_spool(url: str, hold_names) -> None:
    with Spool(url) as spool:
        hold_names(spool, A, ["b1"], silent_after=30.0)
