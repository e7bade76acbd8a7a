"""A multi-IMSI SIM (one ICCID, an IMSI per network profile) counted under its ICCID keeps one
IMSI on its `sim_counters` row: the one read at its last count. Read by an IMSI alone in another
box, under an IMSI read with its ICCID earlier, its day must still be found there (#18: "a SIM's
daily quota held across both"). Both engines: a real SQLite file, a real PostgreSQL schema."""

from __future__ import annotations

from modempool.spool import Spool

CARD = "89860012345678905555"
IMSI_1, IMSI_2 = "460001234565551", "460001234565552"   # two profiles of CARD
OTHER_CARD, OTHER_IMSI = "89860012345678906666", "460001234566666"


def test_a_multi_imsi_cards_day_is_found_under_each_imsi_read_with_its_iccid(spool_target):
    """Box A's a1 reads CARD with IMSI_1 and counts 3; the SIM switches to IMSI_2 (another
    network's profile) and a1 counts 2 more: CARD's day is 5, its row keeps IMSI_2. a1 gets
    another card. CARD goes to box B's b1, which reads no ICCID, and presents IMSI_1 again:
    b1 must find CARD's day of 5, or the two boxes together send more than its quota."""
    with Spool(spool_target) as spool:
        spool.upsert_sim("a1", iccid=CARD, imsi=IMSI_1)
        spool.count_sent("a1", 3)
        spool.upsert_sim("a1", iccid=CARD, imsi=IMSI_2)
        spool.count_sent("a1", 2)
        assert spool.sent_counts("a1")[1:] == (5, 5)
        spool.upsert_sim("a1", iccid=OTHER_CARD, imsi=OTHER_IMSI)
        spool.upsert_sim("b1", iccid=None, imsi=IMSI_1)
        assert spool.sent_counts("b1")[1:] == (5, 5)
        assert spool.card_imsis(CARD) == [IMSI_1, IMSI_2]
