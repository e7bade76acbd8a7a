"""A SIM's give-back that meets a lock another transaction holds (rev23 M1, L1), on PostgreSQL.

The message ROW held (a report stored against it, an operator's cancel): recovery skips it
under SKIP LOCKED; it must count as held (the SIM kept pending, tried again next round), not
be dropped silently and left SENDING under the live daemon's lease until its stop. A part held
by a long transaction: one INFO line a minute, not one every dispatch round.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import MessageState, Spool
from tests.modempool.test_spool_report_locks import TO


def _sending(spool: Spool) -> tuple[SpoolLane, Dispatcher, int, SimpleNamespace]:
    """A dispatcher whose SIM m1 has a one-part message marked writing, to be given back."""
    lane = SpoolLane.for_spool(spool)
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[], lane=lane)
    message = spool.enqueue(TO, "held elsewhere")
    slot = SimpleNamespace(name="m1", owner="test/m1")
    assert spool.claim(message.id, "m1", slot.owner) is not None
    spool.mark_part_writing(message.id, 1, 1, lease_owner=slot.owner)
    dispatcher.releases.pending.add(slot.name)
    return lane, dispatcher, message.id, slot


async def _close(dispatcher: Dispatcher, lane: SpoolLane) -> None:
    dispatcher.recording.close()
    await lane.drain()
    lane.close()


async def test_a_give_back_meeting_a_lock_on_its_message_row_keeps_the_sim_pending(pg_cluster):
    """Fails on a5031df: the SIM left pending while its message stayed SENDING."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        lane, dispatcher, message_id, slot = _sending(spool)
        with holder.transaction() as conn:   # what a report's foreign key takes on the row
            conn.execute("SELECT 1 FROM messages WHERE id = ? FOR KEY SHARE", (message_id,))
            recovery = spool.recover_leases(owner=slot.owner)
            await dispatcher.releases.settle_pending({"m1": slot})
            assert recovery.held == (message_id,)
            assert dispatcher.releases.holds_back(slot)
            assert spool.get(message_id).state is MessageState.SENDING
        await dispatcher.releases.settle_pending({"m1": slot})   # the holder gone: settled
        assert not dispatcher.releases.holds_back(slot)
        assert spool.get(message_id).state is MessageState.AMBIGUOUS
        await _close(dispatcher, lane)


async def test_a_part_held_for_many_rounds_is_said_once_not_every_round(pg_cluster, caplog):
    """Fails on a5031df: one INFO line each round (5 for 5)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        lane, dispatcher, message_id, slot = _sending(spool)
        caplog.set_level(logging.INFO, logger="modempool.spool.recovery")
        with holder.transaction() as conn:
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR KEY SHARE",
                         (message_id,))
            for _round in range(5):
                await dispatcher.releases.settle_pending({"m1": slot})
            assert dispatcher.releases.holds_back(slot)
        said = [r for r in caplog.records if f"message {message_id}: a part" in r.getMessage()]
        assert len(said) == 1
        await dispatcher.releases.settle_pending({"m1": slot})
        assert not dispatcher.releases.holds_back(slot)
        await _close(dispatcher, lane)
