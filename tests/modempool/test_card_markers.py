"""A daemon judged dead while it lives sends nothing more on a card taken from it: each part's
marker requires the modem's hold on its card in the marker's own statement (`CardLost`), and
the heartbeat's look treats a hold that is gone as lost.

The spool's rule on both engines; the daemon's look on a real SQLite spool; then a real daemon
(a subprocess, simulated bank, real PostgreSQL cluster) whose card is taken over while it sends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from modempool.dispatch.cards import CardsServed
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import MessageState, Spool
from modempool.spool.model import CardLost, LeaseLost
from modempool.spool.records import SentPart
from simulator import SimulatedBank
from tests.modempool.test_spool_record_and_mark import each_or_alone
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers

pytestmark = pytest.mark.timeout(300)

CARD = "89860012345678907777"
TO = "+8613800138000"
A, B = "box-a:101:0000aaaa-r1", "box-b:202:0000bbbb-r2"
OWNER = f"{A}/a1"    # the lease owner of modem a1 of run A


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def _claimed(spool: Spool) -> int:
    message = spool.enqueue(TO, "hello")
    spool.claim(message.id, "a1", OWNER, 60)
    return message.id


def test_a_marker_requires_the_modems_hold_on_its_card(spool_target):
    with Spool(spool_target) as spool:
        assert spool.card_holders.take(CARD, A, "a1", lambda owner: False) is None
        spool.claims.require_hold(OWNER, (CARD, A, "a1"))
        first = _claimed(spool)
        spool.mark_part_writing(first, 1, 1, lease_owner=OWNER)            # held: marked
        assert spool.card_holders.take(CARD, B, "b1", lambda owner: True) is None  # A "dead"
        second = _claimed(spool)
        with pytest.raises(CardLost, match=f"its SIM card {CARD} is no longer held"):
            spool.mark_part_writing(second, 1, 1, lease_owner=OWNER)
        recorded, lost = spool.mark_sent_then_writing(                     # with a record too
            [SentPart(first, 1, None, 7, lease_owner=OWNER)], second, 1, 1, lease_owner=OWNER)
        assert recorded == [True] and isinstance(lost, CardLost)
        assert spool.card_holders.let_go(B) == 1                           # the hold is gone
        with pytest.raises(CardLost):
            spool.mark_part_writing(second, 1, 1, lease_owner=OWNER)
        assert spool.parts(second) == []                                   # nothing written
        assert spool.get(second).state is MessageState.SENDING             # still A's lease
        spool.recover_leases(OWNER, include_live=True)
        with pytest.raises(LeaseLost) as lost_lease:                       # the lease gone
            spool.mark_part_writing(second, 1, 1, lease_owner=OWNER)
        assert not isinstance(lost_lease.value, CardLost)
        spool.claims.require_hold(OWNER, None)                             # no ICCID read
        third = _claimed(spool)
        spool.mark_part_writing(third, 1, 1, lease_owner=OWNER)
        assert [p["state"] for p in spool.parts(third)] == ["writing"]


async def test_a_hold_that_is_gone_is_lost_at_the_daemons_next_look(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        lane = SpoolLane.for_spool(spool, 1)
        cards = CardsServed(spool, A, lane, lambda owner: True)
        try:
            lost = await cards.take("a1", CARD, OWNER)
            await cards.check()
            assert not lost.is_set()                       # its own: nothing to do
            spool.card_holders.let_go(A, CARD)             # another took it, and let it go
            await cards.check()
            assert lost.is_set()
            assert cards.why_lost("a1") == (f"its hold on its SIM card {CARD} is gone (another "
                                            "daemon judged this one dead, took the card over "
                                            "and let it go since)")
            assert cards.served == {}
        finally:
            lane.close()


@contextlib.asynccontextmanager
async def slow_daemon_a(tmp_path: Path, url: str, seed: int,
                        ) -> AsyncIterator[tuple[SimulatedBank, DaemonProcess]]:
    """Daemon A's modem a1 on card CARD (a slow network: 0.3 s a part), looking at its cards
    every 10 s (silent_after = 60)."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=seed,
                             iccids={"m1": CARD}) as bank:
        bank.set_fault("m1", "sms_latency", seconds=0.3)
        config = tmp_path / "a.toml"
        config.write_text(f'[spool]\nurl = "{url}"\n\n[pool]\nsilent_after = 60\n\n'
                          f'[[modem]]\nname = "a1"\nport = "{bank.devices[0]}"\n',
                          encoding="utf-8")
        yield bank, await DaemonProcess(config).start()


def _parts(bank: SimulatedBank) -> int:
    """The parts the bank's network has carried."""
    return sum(e["kind"] == "part" for e in bank.network_log())


def _hand_the_card_to_b(spool: Spool) -> None:
    """Run B, live (a fresh heartbeat), takes over daemon A's hold on its card."""
    spool.beat(B, host="box-b", pid=202, started_at=datetime.now(timezone.utc))
    with spool.engine.tx() as conn:
        conn.execute("UPDATE sim_holders SET owner = ?, modem = 'b1'", (B,))


async def test_a_daemon_whose_card_is_taken_over_while_it_sends_stops_at_its_next_part(
        tmp_path, pg_cluster):
    """Daemon A sends one message after another on its card (a slow network: 0.3 s each) and
    looks at its cards every 10 s (silent_after = 60). Its hold is taken over by run B, live
    (its heartbeat is fresh and A has not watched it for silent_after). A sends at most the
    part whose marker committed before, then stands by; the message it was about to send is
    queued again, none is left ambiguous. (Before, A went on until its next look.)"""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        async with slow_daemon_a(tmp_path, url, seed=44) as (bank, daemon):
            spool.enqueue_many({"to": TO, "text": f"one of many {i}"} for i in range(60))

            await eventually(lambda: _parts(bank) >= 2, what="a1 sending")
            _hand_the_card_to_b(spool)
            before = _parts(bank)   # with at most one more on its way: its marker committed
            await daemon.wait_for_log("a1: stops sending: its SIM card")
            await daemon.wait_for_log(f"a1: sends nothing: its SIM card {CARD} is served by "
                                      "another live daemon, box-b:202 (its modem b1)")
            after = _parts(bank)
            counts = spool.counts()
            assert await daemon.stop() == 0
    assert after <= before + 1, (before, after)
    assert counts["sending"] == counts["ambiguous"] == 0, counts
    assert counts["queued"] == 60 - after, counts


async def test_a_message_partly_out_when_its_card_is_lost_is_named_in_the_standby_note(
        tmp_path, pg_cluster):
    """rev20b M2: a six-part message, two parts out when run B takes the card over. The rest
    is requeued bound to this SIM (same number, same concatenation reference), so the modem's
    standby note names that message and how many of its parts are out."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        async with slow_daemon_a(tmp_path, url, seed=45) as (bank, daemon):
            long = spool.enqueue(TO, "a long one " * 80).id   # 880 characters: six parts

            await eventually(lambda: _parts(bank) >= 2, what="two parts out")
            _hand_the_card_to_b(spool)
            await daemon.wait_for_log("parts out) waits for this SIM to finish it")
            out = _parts(bank)
            # the note reaches `sims` after the log line (the daemon's books lane writes it)
            await eventually(lambda: (spool.sim("a1") or {}).get("last_error"),
                             what="the note in status")
            assert await daemon.stop() == 0
    assert f"message {long} ({out} of 6 parts out) waits for this SIM" in daemon.output()
    assert out < 6


@pytest.mark.parametrize("records", [1, 2], ids=["one statement", "two records, alone"])
def test_a_marker_in_a_batch_requires_the_modems_hold_on_its_card(spool_target, records):
    """Markers of several SIMs together (`mark_sent_then_writing_each`: on PostgreSQL one
    statement for the batch; a SIM with two records is left out of it and written alone): the
    one whose modem's card was taken is not written (CardLost, its record still commits), the
    other is."""
    with Spool(spool_target) as spool:
        other = "box-a:101:0000aaaa-r1/a2"
        assert spool.card_holders.take(CARD, A, "a1", lambda owner: False) is None
        spool.claims.require_hold(OWNER, (CARD, A, "a1"))
        sent = []
        for _ in range(records):
            message_id = _claimed(spool)
            spool.mark_part_writing(message_id, 1, 1, lease_owner=OWNER)
            sent.append(SentPart(message_id, 1, None, 7 + len(sent), lease_owner=OWNER))
        second = _claimed(spool)
        free = spool.enqueue(TO, "another SIM's")
        spool.claim(free.id, "a2", other, 60)
        assert spool.card_holders.take(CARD, B, "b1", lambda owner: True) is None  # A "dead"
        (recorded, lost), (_, free_lost) = each_or_alone(
            spool, [(sent, second, 1, 1, OWNER), ([], free.id, 1, 1, other)])
        assert recorded == [True] * records and isinstance(lost, CardLost)
        assert free_lost is None
        assert spool.parts(second) == []                                   # nothing written
        assert [p["state"] for p in spool.parts(free.id)] == ["writing"]
        assert [spool.get(s.message_id).state for s in sent] == [MessageState.SENT] * records
