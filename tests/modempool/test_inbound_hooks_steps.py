"""The edges of an SMS's hooks' steps in one daemon run (`dispatch/inbound.py`,
`dispatch/inbound_command.py`): a step past this run's last is passed, not re-read for ever;
the forward command's step failed for the database makes `keep_up` back off, not spin; a bug
in the command whose step could not be passed leaves the sender behind for `keep_up`; a final
outcome recorded again after its first commit's answer was lost writes no second row. Real
SQLite files and PostgreSQL schemas."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import Spool
from modempool.spool.unavailable import SpoolUnavailable
from tests.modempool.daemon_harness import eventually

pytestmark = pytest.mark.timeout(300)

SENDER = "+8613912345678"
#: A hang guard: the old code's loop never ended; the new one ends at once.
HANG_GUARD = 60.0


def _away(*_args: Any, **_kwargs: Any) -> Any:
    raise SpoolUnavailable("a lock was not granted in time", 1, "lock timeout")


async def _close(spool: Spool, store: InboundStore, lane: SpoolLane) -> None:
    await store.close()
    await lane.drain()
    lane.close()
    spool.close()


async def test_an_sms_left_past_this_runs_last_step_is_passed_not_reread_for_ever(
        spool_target, caplog):
    """A row at step 5 (stored by a run with more handlers) in a run with one handler and no
    command: `catch_up` passes it, says so, and ends. The old code passed nothing and read it
    again without end."""
    spool, lane = Spool(spool_target), SpoolLane(threads=2)
    done: list[str] = []
    store = InboundStore(spool, None, handlers=[lambda _s, m, _c: done.append(m.text)],
                         lane=lane)
    stored = spool.store_inbound(SENDER, "hi", sim="m1", hooks_by=store.owner)
    with spool.transaction() as conn:
        conn.execute("UPDATE inbound_hooks SET next_hook = 5 WHERE inbound_id = ?", (stored.id,))
    store.behind.setdefault(SENDER)
    with caplog.at_level(logging.WARNING):
        assert await asyncio.wait_for(store.catch_up(), HANG_GUARD)
    assert spool.inbound_hooks.waiting() == [] and done == [] and not store.behind
    assert f"SMS {stored.id} were at step 5" in caplog.text
    await _close(spool, store, lane)


async def test_the_commands_step_failed_for_the_database_makes_keep_up_back_off(
        tmp_path, caplog):
    """The read before the forward command fails for the database at every try: `keep_up`
    tries again after 1 s, then 2 (its backoff), the sender behind meanwhile. The old code
    counted each pass as caught up and started the next at once (no backoff line)."""
    spool, lane = Spool(tmp_path / "spool.db"), SpoolLane(threads=2)
    tries: list[int] = []

    def at(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        _away()

    async def command(_spool: Any, _inbound: Any, _passed: Any) -> bool:
        return True

    store = InboundStore(spool, None, handlers=[], lane=lane, command=command)
    spool.inbound_hooks.at = at
    stored = spool.store_inbound(SENDER, "转发我", sim="m1", hooks_by=store.owner)
    stop = asyncio.Event()
    with caplog.at_level(logging.DEBUG, logger="modempool.dispatch.inbound"):
        await store.run_hooks(stored)
        keeping = asyncio.create_task(store.keep_up(stop, every=60.0))
        await eventually(lambda: len(tries) >= 3, what="three tries of the command's step")
        stop.set()
        await keeping
    assert "did not all run; next pass in 1 s" in caplog.text
    assert SENDER in store.behind and [r["inbound_id"] for r in
                                       spool.inbound_hooks.waiting()] == [stored.id]
    await _close(spool, store, lane)


async def test_a_bug_in_the_command_whose_step_cannot_be_passed_leaves_the_sender_behind(
        tmp_path):
    """The command fails otherwise than for the database (a bug) and the pass of its step
    fails for the database: the sender is behind, for `keep_up` to pass it later, which it
    does once the database answers. The old code left it pending with no one to retry it in
    this run (other daemons' SMS of the sender waiting on it)."""
    spool, lane = Spool(tmp_path / "spool.db"), SpoolLane(threads=2)
    runs: list[int] = []

    async def command(_spool: Any, inbound: Any, _passed: Any) -> bool:
        runs.append(inbound.id)
        raise ValueError("a bug in the command's step")

    store = InboundStore(spool, None, handlers=[], lane=lane, command=command)
    skip = spool.inbound_hooks.skip
    spool.inbound_hooks.skip = _away
    stored = spool.store_inbound(SENDER, "转发我", sim="m1", hooks_by=store.owner)
    await store.run_hooks(stored)
    await eventually(lambda: runs and not store.command_step.running(stored.id),
                     what="the command's step ended")
    assert SENDER in store.behind and store.wake.is_set()
    assert [r["inbound_id"] for r in spool.inbound_hooks.waiting()] == [stored.id]
    spool.inbound_hooks.skip = skip   # the database answers again: keep_up's pass
    store.command_step.command = None  # (its config changed meanwhile: passed, not run)
    assert await store.catch_up() and spool.inbound_hooks.waiting() == []
    await _close(spool, store, lane)


def test_a_final_outcome_recorded_again_writes_no_second_row(spool_target):
    """The final outcome's transaction committed but its answer was lost; `_recorded` tries it
    again: the step is passed already, so nothing is written twice. The old code wrote a
    second final row (and logged it as taken over)."""
    from modempool.operator.db import ensure_schema
    from modempool.operator.forwarding import SCHEMA, record_attempt

    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        stored = spool.store_inbound(SENDER, "转发我", sim="m1", hooks_by="run-a")
        with spool.transaction() as conn:
            assert spool.inbound_hooks.advance(conn, stored.id, 0, 3, 4, "run-a")

        def passed() -> bool:
            with spool.transaction() as conn:
                return spool.inbound_hooks.advance(conn, stored.id, 3, 4, 4, "run-a")
        record_attempt(spool, stored.id, "notify", 1, "ok", passed=passed)
        record_attempt(spool, stored.id, "notify", 1, "ok", passed=passed)   # tried again
        assert [tuple(row) for row in spool.rows(
            "SELECT inbound_id, attempt, outcome FROM forward_log")] == [(stored.id, 1, "ok")]
        assert spool.inbound_hooks.waiting() == []
