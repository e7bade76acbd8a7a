"""The ambiguity rule proves a part sent only from a known TP-MR of the same card before it:
TP-MR and delivery reports follow the SIM card, not the modem's name, and a card moves between
modems (audit21 H1). Both engines: a real SQLite file, a real PostgreSQL schema."""

from __future__ import annotations

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.model import utcnow
from tests.modempool.spool_driver import as_version_19

TO = "+8613800138000"
HOLDER = "box:4242:/srv/pool-run1"          # the daemon run that serves every card here
CARD_C, CARD_D = "89860012345678901234", "89860098765432109876"
IMSI_C = "460001234567890"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def card_in(spool: Spool, card: str | None, modem: str) -> None:
    """`card` now sits in `modem` (None: a modem that reads no card): its markers carry it."""
    for owner in (modem, f"{modem}/crashed"):
        if card is None:
            spool.claims.require_hold(owner, None)
            continue
        assert spool.card_holders.take(card, HOLDER, modem, lambda _owner: True) is None
        spool.claims.require_hold(owner, (card, HOLDER, modem))


def sent(spool: Spool, sim: str, reference: int, text: str = "sent") -> int:
    """A message sent by `sim` whose only part got TP-MR `reference`."""
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, sim, 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner=sim)
    spool.mark_last_part_sent(message.id, 1, None, reference, lease_owner=sim)
    return message.id


def lost(spool: Spool, sim: str, text: str = "was it sent?") -> int:
    """A message killed after its marker (its PDU may have left): ambiguous."""
    message = spool.enqueue(TO, text)
    owner = f"{sim}/crashed"
    spool.claim(message.id, sim, owner, 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
    assert spool.recover_leases(owner=owner).ambiguous == (message.id,)
    return message.id


def report(spool: Spool, reference: int, sim: str):
    return spool.store_delivery_report(sim, reference, TO, 0, submitted_at=utcnow())


def test_a_name_with_no_known_reference_before_the_part_proves_nothing(spool):
    """m1 never wrote with a known reference before A (a new modem, or its card just moved in);
    the report of the card's last SMS under m2 (reference 77), heard on m1 now, is not A's: A
    never left. The old code settled A delivered on any reference."""
    sent(spool, "m2", 77, "sent from the card while it was in m2")
    a = lost(spool, "m1", "A: never left")
    assert report(spool, 77, "m1").message_id is None
    assert spool.get(a).state is MessageState.AMBIGUOUS


@pytest.mark.parametrize("card", [CARD_C, None], ids=["another-card", "no-card"])
def test_the_reference_before_must_be_the_same_cards(spool, card):
    """Card D wrote 9 in m1 and left; card C moved in (or a card no key is read from) and A,
    its first write there, is ambiguous. A report 10 heard on m1 says nothing of A: 9 was
    another card's counter (the old code read m1's writes whatever card made them and
    settled A). Without a card, m1's walk ends at the card's write."""
    card_in(spool, CARD_D, "m1")
    sent(spool, "m1", 9, "from card D")
    card_in(spool, card, "m1")
    a = lost(spool, "m1", "A: the first write of the card in m1 now")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(a).state is MessageState.AMBIGUOUS
    assert [row[0] for row in spool.rows("SELECT card FROM parts ORDER BY id")] == [
        CARD_D, card]


def test_a_card_that_wrote_under_another_name_meanwhile_is_read_there(spool):
    """Card C wrote 9 in m1, then A (never left); C moved to m2 and B took 10 there; C came
    back to m1 and B's report 10 is heard on m1 (it matches nothing of m1). The card's writes
    are read wherever it sat: B after A took 10, so 10 is not A's (the old code read m1's
    writes only and settled A)."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A: never left")
    card_in(spool, CARD_C, "m2")
    sent(spool, "m2", 10, "B, sent from m2")
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(a).state is MessageState.AMBIGUOUS


@pytest.mark.parametrize("in_m2", ["iccid", "imsi"])
def test_a_card_is_read_across_the_names_it_sat_in(spool, in_m2):
    """Control: card C wrote 9 in m2, moved to m1, where A is ambiguous and B took 11; report
    10 heard on m1 is A's (the card's writes read across names): A delivered. Also when m2
    read only C's IMSI (its write's card `imsi:`), linked to C by m1's row naming both keys
    (audit22 F3: the walk read C's ICCID alone, found no known reference before A, proved
    nothing)."""
    if in_m2 == "imsi":
        spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C if in_m2 == "iccid" else f"imsi:{IMSI_C}", "m2")
    sent(spool, "m2", 9)
    card_in(spool, CARD_C, "m1")
    a = lost(spool, "m1", "A")
    sent(spool, "m1", 11, "B")
    assert report(spool, 10, "m1").message_id == a
    assert spool.get(a).state is MessageState.DELIVERED


def test_another_cards_ambiguous_write_on_the_same_name_after_the_candidate(spool):
    """Card C wrote 9 then A (never left) in m1 and left; card D moved into m1 and wrote B
    (ambiguous, D's first write). Report 10 heard on m1 may be B's (D's counter), not A's: C
    is no longer in m1. C's walk alone (9, A, nothing after) would prove A; the write of
    unknown outcome on m1 after A by another card refuses it (rev21a H1: add1540 settled A
    delivered)."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C")
    a = lost(spool, "m1", "A, card C: never left")
    card_in(spool, CARD_D, "m1")
    b = lost(spool, "m1", "B, card D")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(a).state is MessageState.AMBIGUOUS, "A settled by another card's report"
    assert spool.get(b).state is MessageState.AMBIGUOUS


def test_another_cards_known_write_on_the_same_name_does_not_refuse(spool):
    """Control: as above, but D's write in m1 got its reference (200): it owns no unmatched
    report, so C's own writes decide and report 10 proves A."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C")
    a = lost(spool, "m1", "A, card C")
    card_in(spool, CARD_D, "m1")
    sent(spool, "m1", 200, "B, card D, its reference known")
    assert report(spool, 10, "m1").message_id == a
    assert spool.get(a).state is MessageState.DELIVERED


def test_a_version_19_spool_is_upgraded_and_its_writes_keep_their_card(spool_target):
    """Schema step 20 (both engines): the card columns, their indexes and the trigger that
    keeps an overwritten write's card."""
    from modempool.spool.schema import SCHEMA_VERSION

    sqlite = not str(spool_target).startswith("postgresql")
    with Spool(spool_target) as spool:
        with spool.engine.tx() as conn:
            as_version_19(conn, sqlite)
            conn.execute("PRAGMA user_version = 19" if sqlite
                         else "UPDATE modempool_schema SET version = 19")
    with Spool(spool_target) as spool:
        version = spool.rows("PRAGMA user_version" if sqlite
                             else "SELECT version FROM modempool_schema")[0][0]
        assert version == SCHEMA_VERSION >= 20
        card_in(spool, CARD_C, "m1")
        a = lost(spool, "m1", "A")
        spool.retry(a)                        # a new attempt overwrites A's write
        spool.claim(a, "m1", "m1", 60)
        spool.mark_part_writing(a, 1, 1, lease_owner="m1")
        assert [tuple(row) for row in spool.rows(
            "SELECT message_id, card FROM earlier_writes")] == [(a, CARD_C)]
        assert spool.rows("SELECT card FROM parts")[0][0] == CARD_C


def test_every_marker_path_writes_its_card(spool):
    """The marker alone and in a batch with the SIMs' previous records (PostgreSQL: one
    statement over the markings as rows) each write the card of the modem's hold."""
    from modempool.spool.records import SentPart

    card_in(spool, CARD_C, "m1")
    card_in(spool, CARD_D, "m2")
    ids = [spool.enqueue(TO, f"message {n}").id for n in range(4)]
    for message_id, sim in zip(ids, ["m1", "m2", "m1", "m2"]):
        spool.claim(message_id, sim, sim, 60)
    spool.mark_part_writing(ids[0], 1, 1, lease_owner="m1")                  # alone
    spool.mark_part_writing(ids[1], 1, 1, lease_owner="m2")
    written = spool.records.mark_sent_then_writing_each([   # PostgreSQL: one statement
        ([SentPart(ids[0], 1, None, 5, "m1")], ids[2], 1, 1, "m1"),
        ([SentPart(ids[1], 1, None, 6, "m2")], ids[3], 1, 1, "m2")])
    assert written == [([True], None), ([True], None)]   # both in the batch
    assert [tuple(row) for row in spool.rows(
        "SELECT message_id, card FROM parts ORDER BY message_id")] == [
        (ids[0], CARD_C), (ids[1], CARD_D), (ids[2], CARD_C), (ids[3], CARD_D)]
