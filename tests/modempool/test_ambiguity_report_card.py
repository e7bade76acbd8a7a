"""A delivery report keeps the SIM card it came back to (schema step 22), and the ambiguity rule
reads the candidates of that card wherever it wrote them: a part whose card moved to another
modem before its report came is settled there (audit22 F4), and a card swapped between two
modems has its report read against its own parts, never the other card's on the same name.
A report stored with no card (an older daemon's) is read by the modem's name as before. Both
engines: a real SQLite file, a real PostgreSQL schema; the daemon's side with a real spool."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from at_commands.events import StatusReport
from at_commands.inbound import decode
from modempool.dispatch import backlog
from modempool.dispatch.cards import CardsServed
from modempool.dispatch.held_inbound import HeldInbound
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import MessageState, Spool
from modempool.spool.model import utcnow
from modempool.spool.schema import SCHEMA_VERSION
from pdu import encode_status_report
from tests.modempool.daemon_harness import eventually
from tests.modempool.spool_driver import as_version_21, schema_version, set_schema_version
from tests.modempool.test_ambiguity_same_card import (CARD_C, CARD_D, IMSI_C, TO, card_in, lost,
                                                      sent)
from tests.modempool.test_spool_report_locks import lock_waiters
from tests.modempool.test_upgrade_older_daemons import OLD_BOX


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def report(spool: Spool, reference: int, sim: str, card: str | None):
    """Report `reference` to TO heard on modem `sim` while it held `card` (None: an older
    daemon's report, or a modem that held no card)."""
    return spool.store_delivery_report(sim, reference, TO, 0, submitted_at=utcnow(), card=card)


def writing(spool: Spool, sim: str, text: str) -> int:
    """A message whose part's marker committed on `sim` (lease owner `sim`): its outcome unknown."""
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, sim, 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner=sim)
    return message.id


def wrote_then_moved(spool: Spool, heard_as: str) -> tuple[int, str]:
    """Card C (m1's row names its ICCID and IMSI) wrote 9 then A (ambiguous) in m1, and moved
    to m2, which holds it by its ICCID, or by its IMSI alone (`heard_as` 'imsi'): A, and the
    key m2 holds C by."""
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    held_by = CARD_C if heard_as == "iccid" else f"imsi:{IMSI_C}"
    card_in(spool, held_by, "m2")
    return a, held_by


@pytest.mark.parametrize("heard_as", ["iccid", "imsi"])
def test_the_report_heard_where_the_card_went_settles_its_part(spool, heard_as):
    """Card C wrote 9 then A (it went out, its answer lost) in m1, and moved to m2 (a
    re-cabled box, a reconnect under another name). A's report 10, heard on m2 holding C, is
    A's: C's walk says 9, A, nothing after. Also when m2 reads only C's IMSI (its hold's key
    `imsi:`), linked to C by m1's row naming both. The old code looked for candidates among
    m2's parts only: A stayed ambiguous for good."""
    a, held_by = wrote_then_moved(spool, heard_as)
    match = report(spool, 10, "m2", held_by)
    assert (match.message_id, match.proven) == (a, True)
    assert spool.get(a).state is MessageState.DELIVERED
    assert spool.rows("SELECT card FROM delivery_reports")[0][0] == held_by


def test_a_report_stored_before_its_part_was_found_ambiguous_is_found_by_its_card(spool):
    """C wrote 9, then A's marker committed in m1 and the daemon died; C moved to m2, whose
    daemon stored A's report 10 (unmatched: A was still 'writing'). When m1's lease is
    recovered, A, found ambiguous, reads the reports that came back to its card, wherever:
    10 proves it. (The old code read m1's reports only.)"""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9)
    a = writing(spool, "m1/crashed", "A")
    card_in(spool, CARD_C, "m2")
    assert report(spool, 10, "m2", CARD_C).message_id is None
    spool.recover_leases(owner="m1/crashed")
    assert spool.get(a).state is MessageState.DELIVERED


@pytest.mark.parametrize("heard_as", ["iccid", "imsi"])
def test_the_outcome_of_the_cards_next_write_elsewhere_reads_its_report_again(spool, heard_as):
    """C wrote 9 then A (ambiguous) in m1, moved to m2 and wrote B there. A's report 10, heard
    on m2, waits: B's outcome is unknown, B could have taken 10 had A never left. B's report
    (11, after its record) reads again the reports its card's earlier ambiguous parts waited
    for, on any modem: 10 lies between 9 and 11, A is settled. Also when m2 reads only C's
    IMSI (B and both reports under `imsi:`, linked to C by m1's row). (The old code looked
    only at m2's parts.)"""
    a, held_by = wrote_then_moved(spool, heard_as)
    b = writing(spool, "m2", "B")
    assert report(spool, 10, "m2", held_by).message_id is None
    assert spool.get(a).state is MessageState.AMBIGUOUS
    spool.mark_last_part_sent(b, 1, None, 11, lease_owner="m2")
    assert report(spool, 11, "m2", held_by).message_id == b
    assert spool.get(a).state is MessageState.DELIVERED


@pytest.mark.parametrize("heard_on", ["m1", "m2"])
def test_a_report_stored_with_no_card_is_read_by_its_modems_name(spool, heard_on):
    """An older daemon (schema 21) stores its reports with no card: they are read by the
    modem's name, as it reads them. Heard on m1, where C wrote A: A settled. Heard on m2,
    where C went: nothing says the card, A stays ambiguous (the safe side)."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    card_in(spool, CARD_C, "m2")
    match = report(spool, 10, heard_on, None)
    settled = heard_on == "m1"
    assert (match.message_id, match.proven) == ((a, True) if settled else (None, False))
    assert spool.get(a).state is (MessageState.DELIVERED if settled else MessageState.AMBIGUOUS)


def test_a_swapped_cards_report_is_not_read_against_the_other_cards_part(spool):
    """C wrote 9 then A (never left) in m1; D wrote 9 then W (it went out) in m2. The boxes'
    cables are swapped: D now sits in m1, C in m2. W's report 10 comes back to D, heard on m1.
    It is W's (D's walk: 9, W), never A's. The old code, knowing only the name m1, read it
    against m1's candidate A, whose card's walk (9, A, nothing after) fits 10: A, which never
    left, was settled DELIVERED and W stayed ambiguous (the known 1 in 256 case)."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from C")
    a = lost(spool, "m1", "A, card C: never left")
    card_in(spool, CARD_D, "m2")
    sent(spool, "m2", 9, "from D")
    w = lost(spool, "m2", "W, card D: went out")
    card_in(spool, CARD_D, "m1")
    card_in(spool, CARD_C, "m2")
    assert report(spool, 10, "m1", CARD_D).message_id == w
    assert spool.get(a).state is MessageState.AMBIGUOUS
    assert spool.get(w).state is MessageState.DELIVERED


def test_a_swapped_cards_report_does_not_match_the_other_cards_sent_part(spool):
    """C sent P (10) in m1; the cables are swapped, D sits in m1 now, and D's report 10 to the
    same recipient is heard on m1. It is not P's: P stays sent (the old code matched the latest
    part of that name and TP-MR and made P DELIVERED). A report that came back to C, heard on
    m1, matches P as ever."""
    card_in(spool, CARD_C, "m1")
    p = sent(spool, "m1", 10, "P, card C")
    card_in(spool, CARD_D, "m1")
    assert report(spool, 10, "m1", CARD_D).message_id is None
    assert spool.get(p).state is MessageState.SENT
    assert report(spool, 10, "m1", CARD_C).message_id == p
    assert spool.get(p).state is MessageState.DELIVERED


def test_another_cards_write_on_the_name_does_not_refuse_a_report_of_the_card(spool):
    """C wrote 9 then A in m1 and moved to m2; D moved into m1 and wrote B (outcome unknown)
    to the same recipient. A report heard with no card on a name could be D's (rev21a H1:
    refused); one that came back to C, heard on m2 holding C, is not D's: it proves A."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    card_in(spool, CARD_D, "m1")
    lost(spool, "m1", "B, card D")
    card_in(spool, CARD_C, "m2")
    assert report(spool, 10, "m2", CARD_C).message_id == a


def test_a_version_21_spool_is_upgraded_in_place_beside_a_live_older_daemon(spool_target):
    """Step 22 only adds (a column, two partial indexes): a version-21 daemon still running is
    no reason to refuse it. Before the upgrade C wrote 9, A (ambiguous) and B (on the air) in
    m1, and an older daemon stored A's report 10 with no card (it waits for B's outcome). After
    it, B's report reads that one again by m1's name and settles A; then C wrote E in m1,
    moved to m2, and E's report, stored with its card, settles E there."""
    now = datetime.now(timezone.utc)
    with Spool(spool_target) as spool:
        spool.daemons.beat(OLD_BOX, host="old-box", pid=4242, started_at=now,
                           now=now - timedelta(seconds=5))
        card_in(spool, CARD_C, "m1")
        sent(spool, "m1", 9)
        a = lost(spool, "m1", "A")
        b = writing(spool, "m1", "B: on the air during the upgrade")
        assert report(spool, 10, "m1", None).message_id is None
        with spool.engine.tx() as conn:
            as_version_21(conn)
            set_schema_version(spool, conn, 21)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 22
        assert spool.rows("SELECT card FROM delivery_reports")[0][0] is None
        assert spool.get(a).state is MessageState.AMBIGUOUS
        spool.mark_last_part_sent(b, 1, None, 11, lease_owner="m1")
        assert report(spool, 11, "m1", CARD_C).message_id == b
        assert spool.get(a).state is MessageState.DELIVERED
        card_in(spool, CARD_C, "m1")   # this Spool's markers carry the hold again
        e = lost(spool, "m1", "E")
        card_in(spool, CARD_C, "m2")
        assert report(spool, 12, "m2", CARD_C).message_id == e
        assert spool.get(e).state is MessageState.DELIVERED
        assert spool.get(b).state is MessageState.DELIVERED


async def test_step_22_waits_for_an_older_daemons_part_then_report(pg_cluster):
    """PostgreSQL: step 22 takes `parts` and then `delivery_reports`, the order writers take
    them. A version-21 daemon that wrote a part (its transaction open) and then stores a report
    goes through while the upgrade waits for it, and the upgrade follows. Taken in the step's
    statements' order (the column's lock on `delivery_reports` first), the two waited for each
    other and PostgreSQL ended one of them (deadlock detected)."""
    import asyncio

    import psycopg

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        a = writing(spool, "m1", "A: on the air")
        with spool.engine.tx() as conn:
            as_version_21(conn)
            set_schema_version(spool, conn, 21)
        with psycopg.connect(url) as older:
            older.execute("SET statement_timeout = '120s'")   # a hang guard only
            older.execute("UPDATE parts SET sent_at = writing_at, message_reference = 5 "
                          "WHERE message_id = %s", (a,))
            upgrade = asyncio.create_task(asyncio.to_thread(_opened, url))
            await eventually(lambda: lock_waiters(spool) >= 1, what="the upgrade waits")
            older.execute("INSERT INTO delivery_reports (sim, message_reference, recipient, "
                          "status, delivered, final, received_at) VALUES ('m1', 5, %s, 0, 1, "
                          "1, %s)", (TO, utcnow().isoformat()))
            older.commit()
            assert await upgrade == SCHEMA_VERSION
        assert schema_version(spool) == SCHEMA_VERSION


def _opened(url: str) -> object:
    """The schema version a Spool opened at `url` upgraded it to, or what it raised."""
    try:
        with Spool(url) as spool:
            return schema_version(spool)
    except Exception as exc:   # what the test reports: the deadlock's victim
        return exc


async def test_the_daemon_stores_the_card_its_modem_held_when_it_heard_the_report(
        locked_spool, monkeypatch):
    """A report is stored with the key of its modem's hold (`CardsServed.card_of`), a held one
    (the spool away) with the hold when it was heard, not when it is stored; a modem that let
    its card go stores none."""
    monkeypatch.setattr(backlog, "WAIT_FIRST", 0.01)   # the held one's first try: at once
    spool, other = locked_spool
    lane = SpoolLane.for_spool(spool, 1)
    try:
        other.rollback()
        cards = CardsServed(spool, "box:1:place-run", lane, dead=lambda owner: True)
        store = InboundStore(spool, None, handlers=[])
        store.card_of = cards.card_of
        await cards.take("m1", [CARD_C, f"imsi:{IMSI_C}"], "m1")
        await store.take("m1", _report(1))
        other.execute("BEGIN IMMEDIATE")   # the spool away: the next one is held
        held = HeldInbound("m1", store, logging.getLogger("modempool.modem.m1"))
        held.hold(_report(2))
        await cards.let_go("m1")   # its hold's release fails (the spool away): card_of None
        other.rollback()
        await eventually(lambda: not held.waiting, what="the held report stored")
        await store.take("m1", _report(3))
        await held.close()
        assert [tuple(row) for row in spool.rows(
            "SELECT message_reference, card FROM delivery_reports ORDER BY id")] == [
            (1, CARD_C), (2, CARD_C), (3, None)]
    finally:
        lane.close()


def _report(reference: int) -> StatusReport:
    pdu_hex = encode_status_report(reference, TO, status=0)
    return StatusReport("m1", pdu_hex, decode(pdu_hex))
