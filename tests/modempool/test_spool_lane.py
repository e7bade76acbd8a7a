"""The daemon's spool lane: its calls run in threads while the event loop keeps the modems
going (several on a database server, one on SQLite); a lane without threads runs them at once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import Spool


async def test_threaded_work_leaves_the_loop_free_and_asks_the_loop_for_its_state():
    lane = SpoolLane(threads=2)
    loop_thread = threading.get_ident()
    released = threading.Event()
    turns = 0

    def slow_call() -> tuple[int, int]:
        # Waits for the loop itself: with the call on the loop this could never return.
        released.wait(timeout=30)
        return threading.get_ident(), lane.on_loop(lambda: threading.get_ident())

    async def the_modems() -> None:
        nonlocal turns
        while not released.is_set():
            turns += 1
            if turns == 3:
                released.set()
            await asyncio.sleep(0)

    try:
        (worker, asked), _ = await asyncio.gather(lane.run(slow_call), the_modems())
    finally:
        lane.close()
    assert worker != loop_thread and asked == loop_thread
    assert turns >= 3


async def test_without_threads_work_runs_at_once_on_the_loop(tmp_path):
    lane = SpoolLane()
    with Spool(tmp_path / "spool.db") as spool:
        message = spool.enqueue("+8613800138000", "hello")
        future = lane.submit(spool.claim, message.id, "m1", "o", 60)
        assert future.done()                      # no turn of the loop in between
        assert (await lane.run(spool.get, message.id)).state.value == "sending"
        failing = lane.submit(spool.mark_sent, 999_999, lease_owner="o")
        assert failing.done() and failing.result() is False
    assert lane.on_loop(threading.get_ident) == threading.get_ident()


async def test_on_sqlite_a_call_waiting_for_the_write_lock_leaves_the_loop_free(tmp_path):
    """Another process's transaction (the HTTP sidecar's group commit) holds the file's write
    lock: the daemon's call waits for it in the lane's thread while the loop turns. On the
    loop, SQLite's busy handler would have stopped every modem meanwhile (here: for ever, as
    the holder is on the loop too)."""
    with Spool(tmp_path / "spool.db") as spool:
        lane = SpoolLane.for_spool(spool)
        assert not lane.parallel      # one thread: the calls keep their order
        other = sqlite3.connect(tmp_path / "spool.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            queued = lane.submit(spool.enqueue, "+8613800138000", "hello")
            then = lane.submit(spool.counts)
            assert not queued.done()  # waiting for the lock, and the loop is ours
            other.execute("COMMIT")
            message = await queued
            assert (await then)["queued"] == 1 and message.state.value == "queued"
        finally:
            other.close()
            lane.close()
