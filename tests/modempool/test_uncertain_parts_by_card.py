"""A card's parts of uncertain fate (marked writing, or ambiguous after a crash) count against
ITS day wherever it goes next, not against the card now in the modem that wrote them (audit22
F5: they were counted by modem name). Both engines: a real SQLite file, a real PostgreSQL
schema."""

from __future__ import annotations

from tests.modempool.test_ambiguity_same_card import (  # noqa: F401  (spool: a fixture)
    CARD_C, CARD_D, card_in, lost, spool)

IMSI_C, IMSI_D = "460001234560001", "460001234560002"


def _days(spool) -> tuple[int, int]:
    """Today's count of the card in m2 and of the card in m1."""
    return spool.sims.sent_counts("m2")[1], spool.sims.sent_counts("m1")[1]


def test_an_ambiguous_part_follows_its_card_to_another_modem(spool):
    """Box A dies with an ambiguous part of card C in m1; C goes to m2 (another box), card D
    into m1. C's day counts the part, D's does not (the old code: (0, 1))."""
    spool.name_sim_card("m1", CARD_C, IMSI_C)
    card_in(spool, CARD_C, "m1")
    lost(spool, "m1", "may have gone out from card C")
    assert spool.sims.sent_counts("m1")[1] == 1
    spool.name_sim_card("m1", CARD_D, IMSI_D)
    spool.name_sim_card("m2", CARD_C, IMSI_C)
    assert _days(spool) == (1, 0)


def test_a_part_written_by_the_cards_imsi_counts_where_its_iccid_is_read(spool):
    """C wrote its part in m1, a modem that reads only its IMSI (the part's card: `imsi:`);
    C moved to m2, which reads both keys, and m1 holds card D (read by its IMSI) now."""
    spool.name_sim_card("m1", None, IMSI_C)
    card_in(spool, f"imsi:{IMSI_C}", "m1")
    lost(spool, "m1", "may have gone out from card C, read by its IMSI")
    spool.name_sim_card("m1", None, IMSI_D)
    spool.name_sim_card("m2", CARD_C, IMSI_C)
    assert _days(spool) == (1, 0)


def test_a_part_written_with_no_card_held_counts_by_its_modem(spool):
    """Control: a part written by a modem that held no card (unchecked: no key read) counts
    against that modem's day as before, whatever card it reads now."""
    card_in(spool, None, "m1")
    lost(spool, "m1", "may have gone out, card unknown")
    spool.name_sim_card("m1", CARD_D, IMSI_D)
    assert _days(spool) == (0, 1)
