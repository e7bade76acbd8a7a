"""A multi-IMSI SIM (one ICCID, an IMSI per network profile) counted under its ICCID keeps one
IMSI on its `sim_counters` row: the one read at its last count. Read by an IMSI alone in another
box, under an IMSI read with its ICCID earlier, its day must still be found there (#18: "a SIM's
daily quota held across both"). Both engines: a real SQLite file, a real PostgreSQL schema."""

from __future__ import annotations

from modempool.spool import Spool
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import as_version_22, schema_version, set_schema_version

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
        assert spool.sent_counts("b1")[1:] == (5, 5)          # the old code: (0, 0)
        spool.count_sent("b1", 1)                              # counted under imsi:IMSI_1
        spool.upsert_sim("c1", iccid=CARD, imsi=IMSI_2)        # back in a modem reading both
        assert spool.sent_counts("c1")[1:] == (6, 6)          # the old code: (5, 5)
        assert spool.sent_counts("a1")[1:] == (0, 0)
        # a modem that reads CARD's ICCID alone holds it by both IMSIs too (`dispatch.cards`),
        # so it meets a clone read by either
        assert spool.sims.card_imsis(CARD) == [IMSI_1, IMSI_2]   # the old code: [IMSI_2]


def test_a_version_22_spools_links_are_kept_at_the_upgrade(spool_target):
    """The upgrade keeps the pairs known then (a `sims` row naming both, a counters row's
    IMSI): a1 counted CARD with IMSI_1, a2 with IMSI_2 (the counters row keeps IMSI_2); after
    it a1 gets another card (its row forgets IMSI_1) and b1 reads IMSI_1 alone: CARD's day is
    found."""
    with Spool(spool_target) as spool:
        spool.upsert_sim("a1", iccid=CARD, imsi=IMSI_1)
        spool.count_sent("a1", 3)
        spool.upsert_sim("a2", iccid=CARD, imsi=IMSI_2)   # the card, moved, in profile 2
        spool.count_sent("a2", 1)      # the counters row keeps IMSI_2 now
        with spool.engine.tx() as conn:
            as_version_22(conn)
            set_schema_version(spool, conn, 22)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 23
        assert sorted(tuple(row) for row in spool.rows("SELECT iccid, imsi FROM card_imsis")) \
            == [(CARD, IMSI_1), (CARD, IMSI_2)]
        spool.upsert_sim("a1", iccid=OTHER_CARD, imsi=OTHER_IMSI)
        spool.upsert_sim("b1", iccid=None, imsi=IMSI_1)
        assert spool.sent_counts("b1")[1:] == (4, 4)
