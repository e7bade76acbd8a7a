"""Two SIMs give their leases back at once (a stop, a bank-wide outage) on PostgreSQL: SIM m2's
release writes every confirmed send not yet recorded, SIM m1's among them, while SIM m1's own
release would settle m1's leases. m1's release waits for that record (dead22): before, it ran
the recovery at once, which locked the message while the record held its part, and one of the
two was aborted as a deadlock; the record lost, and a message the modem had confirmed ended
AMBIGUOUS. Also: a give-back meeting a lock on its message row or a part held long (rev23), and
what a dispatch round's try of a SIM still to be given back waits for (fix24)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import psycopg

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import Spool
from modempool.spool.records import SentPart
from tests.modempool.daemon_harness import eventually, network_messages
from tests.modempool.test_marker_ahead import one_modem
from tests.modempool.test_spool_report_locks import lock_waiters

TO = "+8613800138000"


async def test_a_sims_release_waits_for_its_record_written_by_another_sims_release(
        pg_cluster, caplog):
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        lane = SpoolLane.for_spool(spool)
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[], lane=lane)
        message = spool.enqueue(TO, "confirmed by the modem")
        owner = "test/m1"
        assert spool.claim(message.id, "m1", owner) is not None
        spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
        sent = SentPart(message.id, 1, None, 77, lease_owner=owner)   # confirmed, unrecorded
        dispatcher.recording._unrecorded.append(
            (sent, logging.getLogger("modempool.modem.m1"), TO, 1))
        holder = psycopg.connect(url)   # holds the part's row: the record waits on it
        holder.execute("SELECT 1 FROM parts WHERE message_id = %s FOR UPDATE", (message.id,))
        with caplog.at_level(logging.INFO, logger="modempool"):
            m2 = asyncio.ensure_future(dispatcher.releases.settle(
                SimpleNamespace(name="m2", owner="test/m2")))
            await eventually(lambda: lock_waiters(spool) >= 1,
                             what="m2's release writing m1's record, waiting on the part")
            m1 = asyncio.ensure_future(dispatcher.releases.settle(
                SimpleNamespace(name="m1", owner=owner)))
            # m1's release either waits for that record (the fix: it is registered as m1's
            # record on its way) or, as before, runs the recovery into the part's lock.
            await eventually(lambda: m1.done() or lock_waiters(spool) >= 2 or (
                (on_way := dispatcher.recording._recording.get(owner)) is not None
                and not on_way.done()), what="m1's release under way")
            holder.rollback()
            holder.close()
            await asyncio.gather(m1, m2)
            kept = list(dispatcher.recording._unrecorded)
            dispatcher.recording.close()
        await lane.drain()
        lane.close()
        assert kept == []                        # recorded once, not kept after a deadlock
        assert spool.get(message.id).state.value == "sent"
        assert [tuple(r) for r in spool.engine.rows(
            "SELECT state, message_reference FROM parts WHERE message_id = ?",
            (message.id,))] == [("sent", 77)]
        assert not any("deadlock" in r.getMessage() for r in caplog.records)


async def test_the_stop_tries_a_kept_record_once_more_before_settling_its_lease(
        tmp_path, pg_cluster, caplog):
    """A record the database failed (a deadlock's victim) is kept and tried again later; at the
    stop the SIM's give-back fails it once more. The daemon tries it again before it settles
    the leases left (dead23): before, the stop called the message the modem had confirmed
    ambiguous. The database here fails each record while the modem still holds its card (a
    trigger), which it lets go after its give-back."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, spool.engine.tx() as conn:
        conn.execute("CREATE FUNCTION fail_record() RETURNS trigger LANGUAGE plpgsql AS $$ "
                     "BEGIN IF EXISTS (SELECT 1 FROM sim_holders WHERE iccid NOT LIKE 'name:%') "
                     "THEN RAISE EXCEPTION 'deadlock for the test' USING ERRCODE = '40P01'; "
                     "END IF; RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER fail_record BEFORE UPDATE ON parts FOR EACH ROW "
                     "WHEN (NEW.state = 'sent') EXECUTE FUNCTION fail_record()")
    with caplog.at_level(logging.WARNING, logger="modempool"):
        async with one_modem(tmp_path, url, "backoff = 0.05") as (bank, spool):
            bank.set_fault("m1", "no_status_report")
            message = spool.enqueue(TO, "confirmed, its record failed")
            await eventually(lambda: any("could not record" in r.getMessage()
                                         for r in caplog.records), what="the record failed")
            assert spool.get(message.id).state.value == "sending"
            assert [e["text"] for e in network_messages(bank)] == [message.text]   # out once
    with Spool(url) as spool:
        assert spool.get(message.id).state.value == "sent"


async def test_a_sims_release_that_finds_a_part_held_is_settled_by_the_next_round(pg_cluster):
    """A SIM's give-back meets a part of its message held by another transaction (a report
    being applied, say): the release does not wait for it while it holds the message; the SIM
    stays to be given back, and the next dispatch round's try settles it. (The lock waiters are
    asked outside the holder's transaction: inside it PostgreSQL lists only the sessions there
    were at its first look at `pg_stat_activity`, and the lane's may open later.)"""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        lane, dispatcher, message, slot = _writing(spool, "a part of it held")
        with holder.transaction() as conn:
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR UPDATE", (message.id,))
            dispatcher.releases.pending.add(slot.name)   # what `release_unstarted` does
            release = asyncio.ensure_future(dispatcher.releases.settle(slot))
            await eventually(lambda: release.done() or lock_waiters(spool) > 0,
                             what="the release neither ended nor waited")
            waited = lock_waiters(spool)
        await release
        assert waited == 0 and dispatcher.releases.holds_back(slot)
        assert spool.get(message.id).state.value == "sending"
        dispatcher.releases.clock.advance(1.0)
        await dispatcher.releases.settle_pending({"m1": slot})   # a round after its wait
        assert not dispatcher.releases.holds_back(slot)
        assert spool.get(message.id).state.value == "ambiguous"
        dispatcher.recording.close()
        await lane.drain()
        lane.close()


async def test_a_sims_release_waits_for_its_record_the_timer_started_meanwhile(pg_cluster):
    """SIM m1's release waits for the records on their way (another SIM's marker here); the
    record timer then starts m1's own record, which waits on its part. The release waits for
    that record too (audit23 F2), then finds nothing left to settle: m1 is given back in this
    try and the message is SENT, never called ambiguous. Before, the release settled m1's
    leases at once and met the record on its rows (a deadlock, or a false ambiguity)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        lane, dispatcher, message, slot = _writing(spool, "confirmed by the modem")
        recording = dispatcher.recording
        recording._unrecorded.append((SentPart(message.id, 1, None, 77, lease_owner=slot.owner),
                                      logging.getLogger("modempool.modem.m1"), TO, 1))
        marker = asyncio.get_running_loop().create_future()   # m9's marker on its way
        recording._recording["test/m9"] = marker
        with holder.transaction() as conn:   # m1's record will wait on its part
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR UPDATE", (message.id,))
            dispatcher.releases.pending.add(slot.name)
            release = asyncio.ensure_future(dispatcher.releases.settle(slot))
            await eventually(lambda: any(frame.f_code.co_name == "_recorded"
                                         for frame in _awaiting(release)),
                             what="the release waiting for the records on their way")
            recording._record_when_quiet()   # the record timer fires: m1's record starts
            record = recording._recording[slot.owner]
            await eventually(lambda: lock_waiters(spool) == 1, what="m1's record on its part")
            marker.set_result(None)
            # the release waits for m1's record now, or (before) settles m1's leases at once
            await eventually(lambda: release.done() or lock_waiters(spool) == 2 or any(
                frame.f_locals.get("on_way") is record for frame in _awaiting(release)),
                what="the release under way")
            waited = lock_waiters(spool)
        await release
        recording.close()
        await lane.drain()
        lane.close()
        assert waited == 1                       # the record alone waited, on the holder
        assert not dispatcher.releases.holds_back(slot)
        assert spool.get(message.id).state.value == "sent"
        assert "lease-recovered" not in [e["kind"] for e in spool.events(message.id)]


async def test_a_give_back_meeting_a_lock_on_its_message_row_keeps_the_sim_pending(pg_cluster):
    """The message ROW held by another transaction (an operator's cancel or retry locks it so;
    a foreign key's KEY SHARE no longer holds it: test_recovery_row_held): recovery's locking
    read skips it. It counts as held, the
    SIM stays to be given back and the next round settles it (rev23 M1). Before, the SIM was
    given back and the message stayed SENDING under the live lease until the daemon's stop."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        lane, dispatcher, message, slot = _writing(spool, "its row held")
        with holder.transaction() as conn:
            conn.execute("SELECT 1 FROM messages WHERE id = ? FOR UPDATE", (message.id,))
            assert spool.recover_leases(owner=slot.owner).held == (message.id,)
            dispatcher.releases.pending.add(slot.name)
            await dispatcher.releases.settle_pending({"m1": slot})
            assert dispatcher.releases.holds_back(slot)
            assert spool.get(message.id).state.value == "sending"
        dispatcher.releases.clock.advance(1.0)
        await dispatcher.releases.settle_pending({"m1": slot})   # the holder gone
        assert not dispatcher.releases.holds_back(slot)
        assert spool.get(message.id).state.value == "ambiguous"
        await _close(dispatcher, lane)


async def test_a_part_held_for_many_rounds_is_tried_after_a_wait_not_every_round(
        pg_cluster, caplog):
    """A part held by a long transaction (a session idle in it): the SIM's give-back is tried
    again after 1 s, then 2, 4, at most every 5 s, not in each dispatch round (fix24: rev23 L1's
    rest; before, each round ran a recovery: 5 rounds, 5 recoveries); the held message is
    said once a minute (rev23 L1); the first round after the holder ends and the wait is over
    gives the SIM back."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        lane, dispatcher, message, slot = _writing(spool, "a part of it held long")
        releases, clock = dispatcher.releases, dispatcher.releases.clock
        recoveries = _counted_recoveries(spool)
        caplog.set_level(logging.INFO, logger="modempool.spool.recovery")
        with holder.transaction() as conn:
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR NO KEY UPDATE",
                         (message.id,))   # as a record's UPDATE of the part
            releases.pending.add(slot.name)
            for _round in range(5):
                await releases.settle_pending({"m1": slot})
            assert releases.holds_back(slot) and len(recoveries) == 1
            for wait in (1.0, 2.0, 4.0, 5.0, 5.0):   # each wait over: tried once more
                clock.advance(wait - 0.5)
                await releases.settle_pending({"m1": slot})
                tried = len(recoveries)
                clock.advance(0.5)
                await releases.settle_pending({"m1": slot})
                assert len(recoveries) == tried + 1
            assert releases.holds_back(slot) and len(recoveries) == 6
        said = [r for r in caplog.records if f"message {message.id}: a part" in r.getMessage()]
        assert len(said) == 1
        await releases.settle_pending({"m1": slot})   # the holder gone, the wait not over
        assert releases.holds_back(slot)
        clock.advance(5.0)
        await releases.settle_pending({"m1": slot})
        assert not releases.holds_back(slot)
        assert spool.get(message.id).state.value == "ambiguous"
        await _close(dispatcher, lane)


async def test_a_rounds_try_of_a_sim_waits_for_its_own_records_only(pg_cluster):
    """A SIM still to be given back (its first try failed): a dispatch round's try records its
    own confirmed sends, not every SIM's, and does not wait for another SIM's record on its
    way (fix24: rev23 L1's rest; before, `record_now()` of all SIMs: the round waited for
    m9's record)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        lane, dispatcher, message, slot = _writing(spool, "its SIM given back in a round")
        m9 = asyncio.get_running_loop().create_future()   # m9's record on its way
        dispatcher.recording._recording["test/m9"] = m9
        dispatcher.releases.pending.add(slot.name)
        round_ = asyncio.ensure_future(dispatcher.releases.settle_pending({"m1": slot}))
        await eventually(lambda: round_.done() or any(
            frame.f_code.co_name == "_recorded" for frame in _awaiting(round_)),
            what="the round's try done or waiting for the records")
        waited = not round_.done()
        m9.set_result(None)
        await round_
        assert not waited
        assert not dispatcher.releases.holds_back(slot)
        assert spool.get(message.id).state.value == "ambiguous"
        await _close(dispatcher, lane)


def _writing(spool: Spool, text: str) -> tuple[SpoolLane, Dispatcher, Any, SimpleNamespace]:
    """A dispatcher whose SIM m1 has a one-part message marked writing (its lane, the message,
    the SIM's slot)."""
    lane = SpoolLane.for_spool(spool)
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[], lane=lane)
    dispatcher.releases.clock = Clock()
    message = spool.enqueue(TO, text)
    slot = SimpleNamespace(name="m1", owner="test/m1")
    assert spool.claim(message.id, "m1", slot.owner) is not None
    spool.mark_part_writing(message.id, 1, 1, lease_owner=slot.owner)
    return lane, dispatcher, message, slot


class Clock:
    """The time a `Releases` reads, moved on by the test (no waiting)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _counted_recoveries(spool: Spool) -> list[Any]:
    """The recoveries of a SIM's leases `spool` runs from now on (each one's `Recovery`)."""
    done: list[Any] = []
    recover = spool.recover_leases

    def counted(*args: Any, **kwargs: Any) -> Any:
        done.append(recover(*args, **kwargs))
        return done[-1]

    spool.recover_leases = counted
    return done


async def _close(dispatcher: Dispatcher, lane: SpoolLane) -> None:
    dispatcher.recording.close()
    await lane.drain()
    lane.close()


def _awaiting(task: asyncio.Task) -> list[Any]:
    """The frames of the coroutines `task` awaits through, outermost first."""
    frames, coroutine = [], task.get_coro()
    while coroutine is not None and getattr(coroutine, "cr_frame", None) is not None:
        frames.append(coroutine.cr_frame)
        coroutine = coroutine.cr_await
    return frames
