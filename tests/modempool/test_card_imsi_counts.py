"""A card counted under its ICCID (in a modem that reads both its ICCID and its IMSI) keeps
its IMSI on its `sim_counters` row (schema version 21): a modem that reads only the IMSI finds
the card's day by it, also once the modem that counted the card holds another card. Before,
the link was that modem's `sims` row alone: re-carded, it named the other card, and the
IMSI-only modem counted the card's day from 0 (so it could send the day's quota again).
Both engines; then a version 20 spool's rows, given the IMSI their modems' rows name."""

from __future__ import annotations

from modempool.spool import Spool
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import schema_version, set_schema_version

CARD, IMSI = "89860012345678903333", "460001234563333"


def test_an_imsi_only_modem_finds_the_day_counted_under_the_cards_iccid(spool_target):
    with Spool(spool_target) as spool:
        spool.upsert_sim("a1", iccid=CARD, imsi=IMSI)
        spool.count_sent("a1", 3)
        spool.upsert_sim("a1", iccid="89860012345678904444", imsi="460001234564444")
        spool.count_sent("a1", 1)                       # a1's new card: a day of its own
        spool.upsert_sim("b1", iccid=None, imsi=IMSI)   # the card, in a modem with no ICCID
        assert spool.sent_counts("b1")[1:] == (3, 3)    # the old code: (0, 0)
        spool.count_sent("b1", 2)                       # counted under imsi: now
        assert spool.sent_counts("b1")[1:] == (5, 5)
        spool.upsert_sim("c1", iccid=CARD, imsi=IMSI)   # back in a modem that reads both
        assert spool.sent_counts("c1")[1:] == (5, 5)
        assert spool.sent_counts("a1")[1:] == (1, 1)


def test_a_version_20_spools_counts_take_the_imsi_their_modems_rows_name(spool_target):
    with Spool(spool_target) as spool:
        spool.upsert_sim("a1", iccid=CARD, imsi=IMSI)
        spool.count_sent("a1", 3)
        with spool.engine.tx() as conn:   # as version 20 had it
            conn.execute("DROP INDEX sim_counters_by_imsi")
            conn.execute("ALTER TABLE sim_counters DROP COLUMN imsi")
            set_schema_version(spool, conn, 20)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 21
        assert [tuple(r) for r in spool.rows("SELECT sim_key, imsi FROM sim_counters")] == [
            (f"iccid:{CARD}", IMSI)]
        spool.upsert_sim("a1", iccid="89860012345678904444", imsi="460001234564444")
        spool.upsert_sim("b1", iccid=None, imsi=IMSI)
        assert spool.sent_counts("b1")[1:] == (3, 3)
