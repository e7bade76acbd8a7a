"""The hooks of a received SMS (opt-out, auto-reply, forwarding) are pending in the spool from the
transaction that stores it until the transaction of their writes: a daemon killed between the
two runs them at its next start, exactly once; an SMS stored again (its first COMMIT's answer
lost) runs the hooks it still has; a dead daemon's pending hooks are taken by one live daemon,
never a live one's; a sender whose hooks wait for the database holds up only its own SMS.
Real daemons (subprocesses on simulated modems) killed with SIGKILL, real SQLite files and
PostgreSQL schemas."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from modempool.config import load_config
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.shared import dead_runs
from modempool.dispatch.spool_lane import INBOUND_THREADS, SpoolLane
from modempool.operator.autoreply import AutoReplies
from modempool.operator.optout import OptOutList
from modempool.spool import Spool
from modempool.spool.daemons import HeartbeatWatch, run_owner
from modempool.dispatch.liveness import this_place
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            network_messages, write_config)
from tests.modempool.spool_driver import without_inbound_hooks

pytestmark = pytest.mark.timeout(300)

SENDER = "+8613912345678"
OTHER = "+8613812345678"
REPLY = "营业时间：每天 9:00-18:00。"
CONFIRM = "您已成功退订。"
#: A pattern whose match on HANGS never ends (nested repetition): the hook that tries it is
#: stuck inside its transaction, after the SMS was stored, until the daemon is killed.
STUCK_PATTERN = "^(a+)+$"
HANGS = "a" * 48 + "!"

HOOKS = """
[optout]
confirm = true
confirm_text = "{confirm}"
[[autoreply]]
keywords = ["营业时间"]
reply = "{reply}"
"""


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def _config(tmp_path: Path, target, devices: list[str] | None = None) -> Path:
    path = write_config(tmp_path / "pool.toml", devices or [],
                        extra=HOOKS.format(confirm=CONFIRM, reply=REPLY))
    if not isinstance(target, Path):
        text = path.read_text("utf-8").replace(
            f'path = "{tmp_path / "spool.db"}"', f"url = {target!r}")
        path.write_text(text, "utf-8")
    return path


def _pending(spool: Spool) -> list[tuple[str, int | None]]:
    return [(r["text"], r["next_hook"]) for r in spool.rows(
        "SELECT i.text, h.next_hook FROM inbound_hooks h JOIN inbound i ON i.id = h.inbound_id "
        "ORDER BY h.inbound_id")]


def _to(bank, number: str) -> list[str]:
    return [m["text"] for m in network_messages(bank) if m["to"] == number]


async def test_a_daemon_killed_between_storing_and_the_hooks_runs_them_once_at_its_start(
        tmp_path, spool_target):
    """The auto-reply of an SMS is stuck in its transaction (a pattern that never finishes)
    when the daemon is SIGKILLed; the same sender's 退订 comes after it. Restarted (the stuck
    rule replaced), the daemon takes the killed run's pending hooks over: the SMS is answered,
    then the 退订 recorded and confirmed, once each; killed and started again, nothing is sent
    twice. On the old code the first SMS was never answered."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=3) as bank:
        config = _config(tmp_path, spool_target, bank.devices)
        spool = load_config(config).open_spool()
        stuck = AutoReplies(spool.db).add("never", pattern=STUCK_PATTERN, cooldown=0)
        daemon = await DaemonProcess(config).start()
        await bank.inject("m1", SENDER, HANGS)
        await eventually(lambda: _pending(spool) == [(HANGS, 0)], what="the SMS stored")
        await bank.inject("m1", SENDER, "退订")   # stays on the modem: its events wait
        await daemon.kill()
        assert _to(bank, SENDER) == [] and not OptOutList(spool.db).is_opted_out(SENDER)
        AutoReplies(spool.db).remove(int(stuck.name.split(":")[1]))
        AutoReplies(spool.db).add(REPLY, keywords=("aaaa",))

        daemon = await DaemonProcess(config).start()
        await eventually(lambda: len(_to(bank, SENDER)) == 2, what="the reply and the confirm")
        await eventually(lambda: _pending(spool) == [], what="no hooks pending")
        assert _to(bank, SENDER) == [REPLY, CONFIRM]
        assert OptOutList(spool.db).is_opted_out(SENDER)
        assert "took over the pending hooks of SMS from 1 sender" in daemon.output()
        await daemon.kill()

        daemon = await DaemonProcess(config).start()
        await bank.inject("m1", OTHER, "营业时间")   # this run answers: the earlier ones are done
        await eventually(lambda: _to(bank, OTHER) == [REPLY], what="the other sender answered")
        await daemon.stop()
        assert _to(bank, SENDER) == [REPLY, CONFIRM]
        assert [e.outcome for e in AutoReplies(spool.db).log()] == ["replied", "replied"]
        spool.close()


def _store(tmp_path: Path, target, **options) -> tuple[Spool, InboundStore, SpoolLane]:
    config = load_config(_config(tmp_path, target))
    spool = config.open_spool()
    lane = SpoolLane(threads=INBOUND_THREADS)
    return spool, InboundStore(spool, config, lane=lane, **options), lane


async def _close(spool: Spool, store: InboundStore, lane: SpoolLane) -> None:
    await store.close()
    await lane.drain()
    lane.close()
    spool.close()


def _sms(text: str, sender: str = SENDER, seconds: int = 0):
    """A received SMS as the modem hands it over (a DELIVER PDU with its time stamp)."""
    from datetime import datetime, timedelta, timezone

    import pdu
    from at_commands.events import InboundSms

    stamp = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    [raw] = pdu.encode_deliver(sender, text, timestamp=stamp)
    return InboundSms("m1", raw, pdu.decode_pdu(raw))


async def test_an_sms_stored_again_runs_the_hooks_its_lost_commit_left(tmp_path, spool_target):
    """The COMMIT that stored an SMS lost its answer (the daemon saw an error, ran no hook,
    did not acknowledge): the modem hands it over again, the store finds it stored with its
    hooks pending and runs them, once; a third time nothing runs. The old code found it
    stored and ran nothing."""
    spool, store, lane = _store(tmp_path, spool_target)
    event = _sms("营业时间")
    first = await lane.run(store.store_sms, "m1", event)   # stored; its answer "lost"
    assert first is not None and _pending(spool) == [("营业时间", 0)]
    await store.take("m1", event)     # handed over again
    await store.take("m1", event)     # and again: nothing left to run
    assert [(m.to, m.text) for m in spool.list()] == [(SENDER, REPLY)]
    assert [e.outcome for e in AutoReplies(spool.db).log()] == ["replied"]
    assert _pending(spool) == [] and len(spool.inbound()) == 1
    await _close(spool, store, lane)


def _gone_owner() -> str:
    """The run of a daemon in this process table whose process is gone."""
    pid = 4_000_000   # above pid_max: no process has it
    return run_owner("gone", pid, this_place(), "dead01")


async def test_one_of_two_live_daemons_takes_a_dead_ones_hooks_and_never_a_live_ones(
        tmp_path, pg_cluster):
    """Two live daemons (each its own run) on one PostgreSQL spool find a killed daemon's
    pending hooks at once: each SMS is answered once, by one of them, in the sender's order;
    the hooks of an SMS a live daemon stored (its process still here) are left to it."""
    url = pg_cluster.new_schema()
    spool, a, lane_a = _store(tmp_path, url, owner=run_owner("a", os.getpid(), this_place(),
                                                             "aaaaaa"))
    a.hooks.dead = dead_runs(spool, HeartbeatWatch(30.0, gap=10.0))
    other = load_config(_config(tmp_path, url)).open_spool()
    lane_b = SpoolLane(threads=INBOUND_THREADS)
    b = InboundStore(other, a.config, lane=lane_b, dead=dead_runs(other, HeartbeatWatch(
        30.0, gap=10.0)), owner=run_owner("b", os.getpid(), this_place(), "bbbbbb"))
    dead = _gone_owner()
    live = run_owner("c", os.getpid(), this_place(), "cccccc")   # this process: alive
    for i in range(20):
        spool.store_inbound(f"+86139{i % 5:08d}", f"营业时间 {i}", sim="m1", hooks_by=dead)
    spool.store_inbound(OTHER, "营业时间 live", sim="m1", hooks_by=live)

    async def resume(store: InboundStore) -> int:
        taken = await store.take_over()
        assert await store.catch_up()
        return taken

    taken = await asyncio.gather(resume(a), resume(b))
    assert sorted(taken) == [0, 5]   # the five senders, all to one of them
    # each sender's first answered, the rest held back by the cooldown: each decided once
    assert sorted(m.client_id for m in spool.list()) == [f"autoreply:{i}" for i in range(1, 6)]
    log = AutoReplies(spool.db).log(limit=100)
    assert sorted(e.inbound_id for e in log) == list(range(1, 21))
    assert sorted(e.outcome for e in log) == ["cooldown"] * 15 + ["replied"] * 5
    assert _pending(spool) == [("营业时间 live", 0)]
    assert [row["owner"] for row in spool.inbound_hooks.waiting()] == [live]
    await _close(spool, a, lane_a)
    await _close(other, b, lane_b)


async def test_a_sender_whose_hooks_wait_for_the_database_holds_up_only_its_own_sms(
        tmp_path, caplog):
    """A's hook fails: the database did not answer it in time (once). A's next SMS waits
    behind it in the spool, B's runs at once; then A's run, in order, and nothing is lost at
    a stop meanwhile (they are in the spool). The old code queued B behind A's failure."""
    from modempool.spool.unavailable import SpoolUnavailable

    spool = Spool(tmp_path / "spool.db")
    done: list[str] = []
    failed = threading.Event()

    def hook(_spool, message, _config):
        if message.text == "退订" and not failed.is_set():
            failed.set()
            raise SpoolUnavailable("a lock was not granted in time", 1, "lock timeout")
        done.append(message.text)

    lane = SpoolLane(threads=2)
    store = InboundStore(spool, None, handlers=[hook], lane=lane)
    stop = asyncio.Event()
    first = spool.store_inbound(SENDER, "退订", sim="m1", hooks_by=store.owner)
    await store.run_hooks(first)
    assert failed.is_set() and done == [] and list(store.behind) == [SENDER]
    later = spool.store_inbound(SENDER, "hi", sim="m1", hooks_by=store.owner)
    await store.run_hooks(later)
    await store.run_hooks(spool.store_inbound(OTHER, "B", sim="m1", hooks_by=store.owner))
    assert done == ["B"] and _pending(spool) == [("退订", 0), ("hi", 0)]
    with caplog.at_level(logging.INFO):
        keeping = asyncio.create_task(store.keep_up(stop, every=60.0))
        await eventually(lambda: len(done) == 3, what="A's hooks run")
        stop.set()
        await keeping
    assert done == ["B", "退订", "hi"] and _pending(spool) == []
    assert "Traceback" not in caplog.text
    await _close(spool, store, lane)


async def test_a_later_sms_waits_for_a_dead_runs_pending_opt_out_of_its_sender(tmp_path,
                                                                               spool_target):
    """A dead daemon run left its 退订 pending; before any daemon takes it over, a live one
    stores the sender's next SMS (an auto-reply keyword): it waits. Once the dead run's hooks
    are taken over, the 退订 is recorded first and the SMS is not answered. The old code
    answered it at once (`replied`), before the 退订."""
    spool, store, lane = _store(tmp_path, spool_target)
    store.hooks.dead = lambda owners: []   # the dead run not judged dead yet
    spool.store_inbound(SENDER, "退订", sim="m1", hooks_by=_gone_owner())
    later = await lane.run(store.store_sms, "m1", _sms("营业时间", seconds=60))
    await store.run_hooks(later)
    assert AutoReplies(spool.db).log() == [] and spool.list() == []
    assert _pending(spool) == [("退订", 0), ("营业时间", 0)] and SENDER in store.behind
    assert await store.catch_up() and _pending(spool) == [("退订", 0), ("营业时间", 0)]
    other = await lane.run(store.store_sms, "m1", _sms("营业时间", sender=OTHER))
    await store.run_hooks(other)   # another sender goes on
    assert [(m.to, m.text) for m in spool.list()] == [(OTHER, REPLY)]

    store.hooks.dead = lambda owners: owners   # now judged dead: taken over
    assert await store.take_over() == 1 and await store.catch_up()
    assert OptOutList(spool.db).is_opted_out(SENDER) and _pending(spool) == []
    assert sorted((e.sender, e.outcome) for e in AutoReplies(spool.db).log()) == [
        (OTHER, "replied"), (SENDER, "opted_out")]
    assert [(m.to, m.text) for m in spool.list()] == [(OTHER, REPLY), (SENDER, CONFIRM)]
    assert SENDER not in store.behind
    await _close(spool, store, lane)


async def test_another_runs_sms_at_its_forward_command_holds_up_no_later_sms_of_the_sender(
        tmp_path, spool_target):
    """Another live daemon run's SMS of the sender has passed its handlers and waits only for
    its forward command (the last step): the sender's next SMS, stored here, is answered at
    once (the order is for the handlers' writes, committed). At a handler step it still
    waits. The old code waited for the other run's command to end (no reply)."""
    spool, store, lane = _store(tmp_path, spool_target)
    store.hooks.dead = lambda owners: []   # the other run is alive
    other = run_owner("b", os.getpid(), this_place(), "bbbbbb")
    earlier = spool.store_inbound(SENDER, "转发我", sim="m1", hooks_by=other)
    with spool.transaction() as conn:   # its handlers passed: at the command step
        assert spool.inbound_hooks.advance(conn, earlier.id, 0, len(store.handlers),
                                           len(store.handlers) + 1, other)
    later = await lane.run(store.store_sms, "m1", _sms("营业时间", seconds=60))
    await store.run_hooks(later)
    assert [(m.to, m.text) for m in spool.list()] == [(SENDER, REPLY)]
    assert SENDER not in store.behind
    assert _pending(spool) == [("转发我", len(store.handlers))]

    held = spool.store_inbound(OTHER, "退订", sim="m1", hooks_by=other)   # at its handlers
    await store.run_hooks(await lane.run(store.store_sms, "m1",
                                         _sms("营业时间", sender=OTHER, seconds=90)))
    assert [m.to for m in spool.list()] == [SENDER] and OTHER in store.behind
    assert [row["inbound_id"] for row in spool.inbound_hooks.waiting()][:2] == [earlier.id,
                                                                                 held.id]
    await _close(spool, store, lane)


async def test_hooks_pending_at_a_stop_stay_in_the_spool_for_the_next_start(locked_spool,
                                                                           caplog):
    """The database still away at the stop: one line says the hooks wait in the spool (the
    old code logged each SMS' hooks as lost); the next run takes them over and runs them."""
    spool, other = locked_spool
    other.rollback()
    config = load_config(_config(Path(spool.path).parent, spool.path))
    store = InboundStore(spool, config)
    stored = spool.store_inbound(SENDER, "营业时间", sim="m1", hooks_by=store.owner)
    other.execute("BEGIN IMMEDIATE")   # away again before the hooks run
    with caplog.at_level(logging.INFO):
        await store.run_hooks(stored)
        await store.close()
    assert "the next start runs them" in caplog.text and "did not run" not in caplog.text
    assert "Traceback" not in caplog.text and _pending(spool) == [("营业时间", 0)]
    other.rollback()
    store = InboundStore(spool, config)
    assert await store.take_over() == 1 and await store.catch_up()
    assert [(m.to, m.text) for m in spool.list()] == [(SENDER, REPLY)]
    assert _pending(spool) == []


def test_a_version_13_spool_is_upgraded_with_no_sms_pending(spool_target):
    """Schema step 14 on a version 13 spool (both engines): its SMS are not pending (whether
    their hooks ran cannot be known), an SMS stored afterwards is."""
    from modempool.spool.schema import SCHEMA_VERSION

    with Spool(spool_target) as spool:
        spool.store_inbound(SENDER, "营业时间", sim="m1")
        with spool.transaction() as conn:
            without_inbound_hooks(conn)
            conn.execute("PRAGMA user_version = 13" if spool.engine.name == "sqlite"
                         else "UPDATE modempool_schema SET version = 13")
    with Spool(spool_target) as spool:
        version = spool.rows("PRAGMA user_version" if spool.engine.name == "sqlite"
                             else "SELECT version FROM modempool_schema")[0][0]
        assert version == SCHEMA_VERSION >= 14
        assert [m.text for m in spool.inbound.messages()] == ["营业时间"] and _pending(spool) == []
        spool.store_inbound(OTHER, "退订", sim="m1", hooks_by="box:7:place-run")
        assert _pending(spool) == [("退订", 0)]
