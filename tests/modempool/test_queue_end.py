"""At the queue's end no SIM takes a message ahead: the last messages go to SIMs with nothing in
hand, first free first served. A SIM holding a second message while another SIM sits idle sends
it a whole SMS later than that SIM would have (2 x 32 modems at 1 s: a modem with 31 messages
beside one with 29 cost a run 1 s). Real dispatch rounds on a real SQLite spool; the SIMs'
hands are set as their modem tasks would leave them."""

from __future__ import annotations

import asyncio

import pytest

from modempool.dispatch import dispatcher as dispatcher_module

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.dispatch.sim_slot import PREFETCH, SimSlot, SimState
from modempool.spool import Spool


@pytest.fixture
def spool(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        yield spool


def sims(count: int, holding: int) -> list[SimSlot]:
    """`count` SIMs in rotation, each holding `holding` messages (one on the air, ...)."""
    slots = [SimSlot(f"m{i + 1}", state=SimState.UP) for i in range(count)]
    for slot in slots:
        slot.assigned = slot.assigned_parts = holding
    return slots


def queued(spool, count: int) -> list[int]:
    return [spool.enqueue("+8613800138000", f"message {i}").id for i in range(count)]


async def test_sims_sending_take_nothing_ahead_when_no_more_are_due_than_sims(spool):
    slots = sims(2, holding=1)   # both on the air
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
    last = queued(spool, 1)
    assert await dispatcher.dispatch_once() == 0
    assert spool.get(last[0]).state.value == "queued"
    assert [s.assigned for s in slots] == [1, 1]

    slots[1].assigned = slots[1].assigned_parts = 0   # m2 answered first: it takes the last one
    assert await dispatcher.dispatch_once() == 1
    assert slots[1].inbox.get_nowait().id == last[0]
    assert spool.get(last[0]).sim == "m2"
    assert slots[0].inbox.empty()


async def test_the_last_round_is_taken_ahead_when_every_sim_has_one_on_the_air(spool):
    """As many due as SIMs, each SIM with one on the air (claimed, its lease running): each
    may take its last one ahead, as in every round before (the old rule called this the end,
    and each SIM claimed its last message after its answer). A message whose lease ran out
    (its daemon gone) is no SIM's: in place of one on the air, none goes ahead."""
    slots = sims(2, holding=1)
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
    first, second = queued(spool, 2)
    spool.claim(first, "m1", slots[0].owner, 60)
    spool.claim(second, "m2", slots[1].owner, -60)   # its lease over
    queued(spool, 2)
    assert await dispatcher.dispatch_once() == 0   # 2 due, 1 held: 3 < 2 x 2
    assert [s.assigned for s in slots] == [1, 1]

    spool.renew_lease(second, slots[1].owner, 60)   # m2 sends it
    assert await dispatcher.dispatch_once() == 2   # 2 due, 2 on the air: one ahead each
    assert [s.assigned for s in slots] == [PREFETCH, PREFETCH]


async def test_at_the_queue_end_each_free_sim_takes_one(spool):
    slots = sims(3, holding=0)
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
    queued(spool, 3)
    assert await dispatcher.dispatch_once() == 3
    assert [s.assigned for s in slots] == [1, 1, 1]


async def test_sims_take_their_next_ahead_while_more_are_due_than_sims(spool):
    slots = sims(2, holding=1)
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
    queued(spool, 3)
    assert await dispatcher.dispatch_once() == 2
    assert [s.assigned for s in slots] == [PREFETCH, PREFETCH]


async def test_a_round_reads_enough_to_tell_the_queue_end_with_many_sims_full(spool):
    """29 of 30 SIMs hold all they may (a round would read only 2 x 1 + 16 rows for the one
    with room): 40 due are still more than 30 SIMs, so that one takes its next ahead."""
    slots = sims(30, holding=PREFETCH)
    slots[0].assigned = slots[0].assigned_parts = 1
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
    queued(spool, 40)
    assert await dispatcher.dispatch_once() == 1
    assert slots[0].assigned == PREFETCH


async def test_a_sim_left_with_nothing_is_served_while_claims_ahead_wait_for_quiet(spool,
                                                                                   monkeypatch):
    """A claim round waiting for a quiet moment (a marker not committed yet) gives way to a
    SIM left with nothing in hand: at the queue's end that SIM takes the last message now, not
    after the claims' patience (made endless here: the old code never served it)."""
    monkeypatch.setattr(dispatcher_module, "PREFETCH_PATIENCE", 300.0)
    slots = sims(2, holding=1)
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
    on_the_air = spool.claim(queued(spool, 1)[0], "m1", slots[0].owner, 60)   # m1 sends it
    last = queued(spool, 1)[0]
    marker = asyncio.get_running_loop().create_future()   # a part waits for its commit
    dispatcher.marking(marker)
    running = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(10):   # the round finds both SIMs busy, then waits for a quiet moment
            await asyncio.sleep(0)
        assert spool.get(last).state.value == "queued"
        dispatcher.done(slots[0], on_the_air)   # m1 answered: nothing left in its hands
        async with asyncio.timeout(30):   # a hang guard
            handed = await slots[0].inbox.get()
        assert handed.id == last
    finally:
        dispatcher.stop()
        marker.set_result(None)
        await running


async def test_on_a_shared_spool_the_other_daemons_sims_up_count_too(pg_cluster):
    """Two SIMs here, two more up at another daemon on the same queue: three due are not more
    than the four SIMs, so this daemon's SIMs take none ahead (the other's free SIMs may)."""
    with Spool(pg_cluster.new_schema()) as spool:
        for name in ("other1", "other2"):
            spool.upsert_sim(name, state="up")
        slots = sims(2, holding=1)
        for slot in slots:
            spool.upsert_sim(slot.name, state="up")
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
        queued(spool, 3)
        assert await dispatcher.dispatch_once() == 0
        assert [s.assigned for s in slots] == [1, 1]

        spool.upsert_sim("other2", state="down")   # read again a second later: 3 SIMs up
        dispatcher._last_expiry = 0.0
        assert await dispatcher.dispatch_once() == 0
        spool.upsert_sim("other1", state="down")   # 2 SIMs up: 3 due are more
        dispatcher._last_expiry = 0.0
        assert await dispatcher.dispatch_once() == 2


async def test_on_a_shared_spool_the_other_daemons_sims_hands_count_too(pg_cluster):
    """Four SIMs up (two of another daemon), four due: each of this daemon's SIMs takes its
    last one ahead only once every SIM, the other daemon's too, has one on the air."""
    with Spool(pg_cluster.new_schema()) as spool:
        for name in ("m1", "m2", "other1", "other2"):
            spool.upsert_sim(name, state="up")
        slots = sims(2, holding=1)
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
        air = queued(spool, 3)
        for message_id, owner in zip(air, [s.owner for s in slots] + ["other/other1"]):
            spool.claim(message_id, owner.split("/")[-1], owner, 60)
        queued(spool, 4)
        assert await dispatcher.dispatch_once() == 0   # other2 has nothing: the end
        spool.claim(queued(spool, 1)[0], "other2", "other/other2", 60)
        assert await dispatcher.dispatch_once() == 2
        assert [s.assigned for s in slots] == [PREFETCH, PREFETCH]


async def test_a_round_that_finds_the_due_messages_held_by_another_round_says_so(pg_cluster):
    """Another daemon's round holds the last due message locked (SKIP LOCKED hides it): this
    round hands nothing but knows it is there, so a SIM with nothing in hand asks again soon
    (HELD_ELSEWHERE_AGAIN), not after the poll interval; once that round is over it takes it."""
    import psycopg

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        slots = sims(1, holding=0)
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
        last = queued(spool, 1)[0]
        with psycopg.connect(url) as other:   # the other daemon's round, its transaction open
            other.execute("SELECT id FROM messages WHERE id = %s FOR UPDATE", (last,))
            assert await dispatcher.dispatch_once() == 0
            assert dispatcher._held_elsewhere
        assert await dispatcher.dispatch_once() == 1
        assert not dispatcher._held_elsewhere
        assert slots[0].inbox.get_nowait().id == last


async def test_a_round_cut_by_its_limit_does_not_say_the_rest_are_held_elsewhere(pg_cluster):
    """More due than a round reads (its LIMIT) is a long queue, not another round's locks: a
    SIM with nothing in hand (held back by its limits, say) must not make the loop poll."""
    with Spool(pg_cluster.new_schema()) as spool:
        slots = sims(40, holding=PREFETCH)
        slots[0].assigned = slots[0].assigned_parts = 1   # room for one: a round reads 18
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=slots)
        queued(spool, 30)
        assert await dispatcher.dispatch_once() == 0   # 30 due, 40 SIMs: the end, none ahead
        assert not dispatcher._held_elsewhere
