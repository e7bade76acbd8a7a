"""One SIM card's writes stand under two keys: its ICCID in a modem that reads it, `imsi:<IMSI>`
in one that reads only the IMSI. The ambiguity rule reads them as one card, by the links the
spool knows (audit22 F3: a never-sent SMS was proven sent by the report of the card's write under
its other key), and where it knows none a write under an unlinked key of the other form refuses
the proof. Both engines: a real SQLite file, a real PostgreSQL schema."""

from __future__ import annotations

from modempool.spool import MessageState
from modempool.spool.card_links import card_keys
from tests.modempool.test_ambiguity_same_card import (  # noqa: F401  (spool: a fixture)
    CARD_C, CARD_D, HOLDER, IMSI_C, card_in, lost, report, sent, spool)

IMSI_D = "460009876543210"


def _c_read_by_imsi_alone_in_m2(spool) -> None:
    """Card C (ICCID and IMSI read in m1) moves to m2, a modem that reads only its IMSI."""
    spool.name_sim_card("m2", None, IMSI_C)
    card_in(spool, f"imsi:{IMSI_C}", "m2")


def test_a_write_under_the_cards_imsi_after_the_part_refuses_the_proof(spool):
    """C wrote 9 in m1 (both keys read), then P (never left); in m2 it wrote W under its IMSI,
    outcome unknown (W took 10); back in m1, W's report 10 is heard there. 10 may be W's: P
    stays ambiguous (the old code walked C's ICCID writes only and settled P delivered)."""
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C in m1")
    p = lost(spool, "m1", "P: never left")
    _c_read_by_imsi_alone_in_m2(spool)
    w = lost(spool, "m2", "W: took 10")
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(p).state is MessageState.AMBIGUOUS
    assert spool.get(w).state is MessageState.AMBIGUOUS


def test_the_link_kept_on_the_cards_counters_is_enough(spool):
    """As above, but by the time the report comes no modem's row names C's two keys (m1 holds
    card D now, m2 reads nothing): the counters row C was counted under in m1 keeps its IMSI
    (schema 21), which links W's key to C."""
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C in m1, counted under its ICCID with its IMSI")
    p = lost(spool, "m1", "P: never left")
    _c_read_by_imsi_alone_in_m2(spool)
    lost(spool, "m2", "W: took 10")
    spool.name_sim_card("m1", CARD_D, IMSI_D)
    spool.name_sim_card("m2", None, None, forget=True)
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(p).state is MessageState.AMBIGUOUS


def test_a_known_write_under_the_cards_imsi_before_the_part_is_its_counter(spool):
    """C wrote 9 in m1, then B in m2 under its IMSI (10, sent), then P in m1 (never left).
    B's report 10, heard on m1, matches nothing there: C's counter read under both keys puts
    10 before P, so it is not P's (the old code read 9 as C's last reference before P)."""
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C in m1")
    _c_read_by_imsi_alone_in_m2(spool)
    sent(spool, "m2", 10, "B: from card C in m2, by its IMSI")
    card_in(spool, CARD_C, "m1")
    p = lost(spool, "m1", "P: never left")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(p).state is MessageState.AMBIGUOUS


def test_unlinked_keys_of_the_other_form_refuse_the_proof(spool):
    """No modem ever read C's two keys together: the spool cannot tell whether `imsi:<X>`,
    which wrote W to the recipient in the report's window, is C. It may be: P stays
    ambiguous."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C in m1 (its IMSI never read)")
    p = lost(spool, "m1", "P: never left")
    card_in(spool, f"imsi:{IMSI_C}", "m2")
    lost(spool, "m2", "W: took 10")
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1").message_id is None
    assert spool.get(p).state is MessageState.AMBIGUOUS


def test_another_cards_imsi_write_does_not_refuse(spool):
    """Control: card D, read by its IMSI alone in m2 and known by both keys from an earlier
    modem, wrote W to the recipient (unknown outcome): another card's counter, not C's; C's own
    writes (9, A, nothing after) prove A by report 10."""
    spool.name_sim_card("m3", CARD_D, IMSI_D)
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C")
    a = lost(spool, "m1", "A, card C")
    spool.name_sim_card("m2", None, IMSI_D)
    card_in(spool, f"imsi:{IMSI_D}", "m2")
    lost(spool, "m2", "W, card D by its IMSI")
    assert report(spool, 10, "m1").message_id == a
    assert spool.get(a).state is MessageState.DELIVERED


def _c_wrote_w_under_an_imsi_never_seen_with_it(spool) -> tuple[int, int]:
    """C, by its ICCID alone in m1, wrote 9, then P (never left); in m2, which reads only the
    IMSI, it wrote W (took 10) under an IMSI no modem read beside its ICCID; back in m1, W's
    report 10 is heard. Returns P and W."""
    card_in(spool, CARD_C, "m1")
    sent(spool, "m1", 9, "from card C in m1, by its ICCID alone")
    p = lost(spool, "m1", "P: never left")
    card_in(spool, f"imsi:{IMSI_C}", "m2")
    w = lost(spool, "m2", "W: took 10")
    card_in(spool, CARD_C, "m1")
    assert report(spool, 10, "m1").message_id is None
    return p, w


def test_a_card_with_another_imsi_linked_still_counts_an_unlinked_one(spool):
    """A multi-IMSI card: m3 once read C with another IMSI, so C has a link of that form, but
    not to `imsi:<IMSI_C>` it writes under now. W under that unlinked key may be C's: P stays
    ambiguous (before, any link of the other form skipped the unlinked write: P DELIVERED)."""
    spool.name_sim_card("m3", CARD_C, "460001111111111")
    p, w = _c_wrote_w_under_an_imsi_never_seen_with_it(spool)
    assert [spool.get(p).state, spool.get(w).state] == [MessageState.AMBIGUOUS] * 2


def test_a_hold_left_on_the_modem_links_no_other_card(spool):
    """m1 held card D by both keys and its let-go failed (the database away: the hold stays
    until the run is judged dead); then C sits in m1, read by its ICCID alone. D's hold on m1
    is no link of C to D's IMSI (before: C's keys took D's IMSI, so W's key counted as linked
    and P was settled DELIVERED)."""
    assert spool.card_holders.take([CARD_D, f"imsi:{IMSI_D}"], HOLDER, "m1",
                                   lambda _owner: True) is None
    p, w = _c_wrote_w_under_an_imsi_never_seen_with_it(spool)
    with spool.engine.tx() as conn:
        assert card_keys(conn, CARD_C) == (CARD_C,)
    assert [spool.get(p).state, spool.get(w).state] == [MessageState.AMBIGUOUS] * 2
