"""A delivery report of a SENT part is matched by the card it came back to, on any modem, as well
as by its modem's name (`report_match.py`, schema step 23): a card moved to another modem (or
box) after a send has that part delivered there (before, it was looked up by the name alone and
stayed sent for good), and a card's write on the name behind another card's later one with the
same TP-MR is found (rev23 L2). Another card's write is never matched; a report stored with no
card keeps the name rule; the card's read is bounded by the report's window. Both engines: a
real SQLite file, a real PostgreSQL schema."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.model import utcnow
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.daemon_harness import eventually
from tests.modempool.spool_driver import (as_version_21, as_version_22, schema_version,
                                          set_schema_version)
from tests.modempool.test_ambiguity_same_card import (CARD_C, CARD_D, IMSI_C, TO, card_in, lost,
                                                      sent)
from tests.modempool.test_ambiguity_report_card import _opened
from tests.modempool.test_spool_report_locks import lock_waiters
from tests.modempool.test_upgrade_older_daemons import OLD_BOX

#: An IMSI the spool links to no card: a write under it may be any card's (`UNLINKED`).
UNKNOWN_IMSI = "460009999999999"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def report(spool: Spool, reference: int, sim: str, card: str | None, *, stamp=None):
    """Report `reference` to TO (delivered), heard on modem `sim` holding `card`, its service
    centre stamp `stamp` (now)."""
    return spool.store_delivery_report(sim, reference, TO, 0, submitted_at=stamp or utcnow(),
                                       card=card)


@pytest.mark.parametrize("heard_as", ["iccid", "imsi"])
def test_a_moved_cards_report_delivers_the_part_it_sent_in_its_old_modem(spool, heard_as):
    """Card C sent P (10) in m1 and moved to m2; P's report comes back to C in m2, held by its
    ICCID, or by its IMSI alone (linked to C by m1's row naming both). P is delivered. The old
    code looked for P among m2's parts only: P stayed sent for good. A report stored with no
    card (an older daemon's, a modem holding none yet) keeps that rule: on m2 it matches
    nothing."""
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    p = sent(spool, "m1", 10, "P")
    held_by = CARD_C if heard_as == "iccid" else f"imsi:{IMSI_C}"
    card_in(spool, held_by, "m2")
    assert report(spool, 10, "m2", None).message_id is None   # no card: m2's name alone
    match = report(spool, 10, "m2", held_by)
    assert (match.message_id, match.proven) == (p, False)
    assert spool.get(p).state is MessageState.DELIVERED


@pytest.mark.parametrize("written_on", ["m1", "m2"])
def test_a_cards_write_behind_another_cards_later_one_on_the_name_is_matched(spool, written_on):
    """C sent P (10) in m1 (or m2) and left; D came into m2 and sent Q (10) to the same
    recipient; C sits in m2 now. C's report 10 heard on m2 is P's: Q is D's (its report comes
    back to D), passed over. The old code took m2's latest with 10 (Q), rejected it as
    another card's and looked no further (rev23 L2): P stayed sent."""
    card_in(spool, CARD_C, written_on)
    p = sent(spool, written_on, 10, "P, card C")
    card_in(spool, CARD_D, "m2")
    q = sent(spool, "m2", 10, "Q, card D")
    card_in(spool, CARD_C, "m2")
    assert report(spool, 10, "m2", CARD_C).message_id == p
    assert spool.get(p).state is MessageState.DELIVERED
    assert spool.get(q).state is MessageState.SENT


def test_another_cards_sent_part_is_never_matched_wherever_heard(spool):
    """C sent P (10) in m1 and moved to m2; D sits in m1 now. D's report 10, heard on m1 or on
    m3, is not P's: P stays sent."""
    card_in(spool, CARD_C, "m1")
    p = sent(spool, "m1", 10, "P, card C")
    card_in(spool, CARD_C, "m2")
    card_in(spool, CARD_D, "m1")
    assert report(spool, 10, "m1", CARD_D).message_id is None
    assert report(spool, 10, "m3", CARD_D).message_id is None
    assert spool.get(p).state is MessageState.SENT


def test_the_cards_write_elsewhere_must_lie_in_the_reports_window(spool):
    """C sent P (10) in m1 and moved to m2. A report 10 back to C whose service centre stamp is
    an hour after P's write is not P's (C took 10 again since, 256 writes on; that write's
    record is not in yet): it matches nothing there. On the name that wrote it, the name rule
    still matches the latest write, as ever."""
    card_in(spool, CARD_C, "m1")
    p = sent(spool, "m1", 10, "P")
    card_in(spool, CARD_C, "m2")
    later = utcnow() + timedelta(hours=1)
    assert report(spool, 10, "m2", CARD_C, stamp=later).message_id is None
    assert spool.get(p).state is MessageState.SENT
    assert report(spool, 10, "m2", CARD_C, stamp=utcnow()).message_id == p


def test_the_cards_latest_write_with_the_reference_is_the_reports(spool):
    """C sent P (10) in m1, then R (10: its counter went round) in m3, and sits in m2 now: the
    report is R's (the latest), never P's. And its write on another name later than the name's
    own: C sent S (20) in m2, then T (20) in m4 and came back to m2: T's."""
    card_in(spool, CARD_C, "m1")
    p = sent(spool, "m1", 10, "P")
    card_in(spool, CARD_C, "m3")
    r = sent(spool, "m3", 10, "R")
    card_in(spool, CARD_C, "m2")
    s = sent(spool, "m2", 20, "S")
    card_in(spool, CARD_C, "m4")
    t = sent(spool, "m4", 20, "T")
    card_in(spool, CARD_C, "m2")
    assert report(spool, 10, "m2", CARD_C).message_id == r
    assert report(spool, 20, "m2", CARD_C).message_id == t
    assert spool.get(p).state is spool.get(s).state is MessageState.SENT


def test_a_later_write_under_a_key_linked_to_no_card_matches_nothing(spool):
    """C sent P (10) in m1; then m1 read only an IMSI the spool links to no card (C's other
    IMSI, or another card's: not known) and sent U (10) to the same recipient. C's report 10
    heard on m1 may be U's: nothing is matched (as before). Written before P, such a write
    does not stand in the way: P's."""
    card_in(spool, CARD_C, "m1")
    p = sent(spool, "m1", 10, "P")
    card_in(spool, f"imsi:{UNKNOWN_IMSI}", "m1")
    sent(spool, "m1", 10, "U: under an unlinked IMSI")
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1", CARD_C).message_id is None
    assert spool.get(p).state is MessageState.SENT
    card_in(spool, f"imsi:{UNKNOWN_IMSI}", "m2")
    sent(spool, "m2", 11, "V: under an unlinked IMSI")
    card_in(spool, CARD_C, "m2")
    w = sent(spool, "m2", 11, "W")
    assert report(spool, 11, "m2", CARD_C).message_id == w


def test_a_write_of_no_card_on_the_name_is_matched_as_before(spool):
    """m1 held no card when it sent P (10): a report heard on m1 holding C may be P's (the
    name rule, as before)."""
    card_in(spool, None, "m1")
    p = sent(spool, "m1", 10, "P")
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1", CARD_C).message_id == p


def test_the_report_of_the_cards_next_write_elsewhere_settles_an_ambiguous_one(spool):
    """C wrote 9 then A (ambiguous) then B in m1, and moved to m2. A's report 10, heard on m2,
    waits for B's outcome; B's record (11) comes, then B's report, heard on m2: matched to B by
    C (the old code matched nothing there), it reads again what C's earlier ambiguous parts
    waited for: 10 lies between 9 and 11, A is settled."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    b = spool.enqueue(TO, "B").id
    spool.claim(b, "m1", "m1", 60)
    spool.mark_part_writing(b, 1, 1, lease_owner="m1")
    card_in(spool, CARD_C, "m2")
    assert report(spool, 10, "m2", CARD_C).message_id is None
    spool.mark_last_part_sent(b, 1, None, 11, lease_owner="m1")
    assert report(spool, 11, "m2", CARD_C).message_id == b
    assert spool.get(b).state is MessageState.DELIVERED
    assert spool.get(a).state is MessageState.DELIVERED


def test_a_version_22_spool_is_upgraded_in_place_and_its_parts_matched_by_card(spool_target):
    """Step 23 replaces the index by card with one by card, TP-MR and time of writing, in
    place: P, sent by C in m1 before the upgrade, is matched by C's report heard on m2 after
    it. A version-22 daemon still running is no reason to refuse it (it only changes an
    index)."""
    now = utcnow()
    with Spool(spool_target) as spool:
        spool.daemons.beat(OLD_BOX, host="old-box", pid=4242, started_at=now,
                           now=now - timedelta(seconds=5))
        card_in(spool, CARD_C, "m1")
        p = sent(spool, "m1", 10, "P")
        with spool.engine.tx() as conn:
            as_version_22(conn)
            set_schema_version(spool, conn, 22)
        assert "parts_by_card_reference" not in _indexes(spool)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 23
        indexes = _indexes(spool)
        assert "parts_by_card_reference" in indexes and "parts_by_card" not in indexes
        card_in(spool, CARD_C, "m2")
        assert report(spool, 10, "m2", CARD_C).message_id == p


def _indexes(spool: Spool) -> set[str]:
    """The names of the indexes on `parts`."""
    if spool.engine.name == "sqlite":
        return {row[0] for row in spool.rows(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'parts'")}
    return {row[0] for row in spool.rows(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'parts' "
        "AND schemaname = current_schema()")}


@pytest.mark.parametrize("older", [21, 22])
async def test_step_23_waits_for_an_older_daemon_that_read_parts_and_then_writes_them(
        pg_cluster, older):
    """PostgreSQL: a daemon of version 22 (or 21) read `parts` (a report's match), its
    transaction open, and then writes a part. The upgrade waits for it and follows. Taken as
    the step's first statement needs (SHARE, for the new index; or step 22's SHARE, from 21),
    the lock let the upgrade in ahead of the daemon's write, then the index's drop waited for
    the daemon's read, and the daemon's write for the upgrade: PostgreSQL ended one of them
    (deadlock detected)."""
    import asyncio

    import psycopg

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        card_in(spool, CARD_C, "m1")
        p = sent(spool, "m1", 10, "P")
        with spool.engine.tx() as conn:
            (as_version_21 if older == 21 else as_version_22)(conn)
            set_schema_version(spool, conn, older)
        with psycopg.connect(url) as daemon:
            daemon.execute("SET statement_timeout = '120s'")   # a hang guard only
            daemon.execute("SELECT id FROM parts WHERE sim = 'm1' AND message_reference = 10")
            upgrade = asyncio.create_task(asyncio.to_thread(_opened, url))
            await eventually(lambda: lock_waiters(spool) >= 1, what="the upgrade waits")
            daemon.execute("UPDATE parts SET state = 'delivered' WHERE message_id = %s", (p,))
            daemon.commit()
            assert await upgrade == SCHEMA_VERSION
        assert schema_version(spool) == SCHEMA_VERSION

