"""A card's take whose COMMIT went through but whose answer was lost (audit22 L2): the holds
are in the database while the daemon's memory (`CardsServed.served`) lacks them. When the
modem stops they are let go by the modem too, not by the remembered keys alone (the old code
let go of nothing, and the card stayed held by this live run until it stopped: another
daemon's modem with the card stood by for nothing). The modem's name hold stays. A real
cluster behind the proxy that cuts the client off at COMMIT's answer (or at the let_go)."""

from __future__ import annotations

import psycopg
import pytest

from modempool.dispatch.cards import CardsServed
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool.unavailable import database_failed
from tests.modempool.test_spool_commit_lost import _probed, behind_proxy  # noqa: F401

pytestmark = pytest.mark.timeout(120)

CARD, IMSI = "89860012345678908888", "460008888888888"
A = "box-a:101:0000aaaa-r1"


def _holds(direct: str) -> set[tuple[str, str]]:
    with psycopg.connect(direct) as conn:
        return {(key, modem) for key, modem in conn.execute(
            "SELECT iccid, modem FROM sim_holders WHERE owner = %s", (A,))}


async def test_holds_whose_take_answer_was_lost_are_let_go_when_the_modem_stops(behind_proxy):
    spool, proxy, direct = behind_proxy
    assert spool.card_holders.take_names(["a1"], A, lambda owner: False) == {}
    lane = SpoolLane.for_spool(spool, 1)
    cards = CardsServed(spool, A, lane, lambda owner: True)
    try:
        proxy.marker = b"COMMIT\x00"
        with pytest.raises(Exception) as lost:
            await cards.take("a1", [CARD, f"imsi:{IMSI}"], f"{A}/a1")
        assert proxy.cut.is_set() and database_failed(lost.value)
        assert cards.served == {}
        assert _holds(direct) == {(CARD, "a1"), (f"imsi:{IMSI}", "a1"), ("name:a1", "a1")}
        _probed(spool)
        await cards.let_go("a1")
    finally:
        lane.close()
    assert _holds(direct) == {("name:a1", "a1")}


async def test_a_let_go_the_database_failed_is_tried_again_at_the_modems_next(behind_proxy):
    """rev22a R7: the keys were forgotten before the failed call and the modem was not marked
    unsure, so its later let_go returned at once; the card stayed held by this live run (a
    box the card moved to stood by, naming this modem) until the daemon stopped."""
    spool, proxy, direct = behind_proxy
    assert spool.card_holders.take_names(["a1"], A, lambda owner: False) == {}
    lane = SpoolLane.for_spool(spool, 1)
    cards = CardsServed(spool, A, lane, lambda owner: True)
    try:
        await cards.take("a1", [CARD, f"imsi:{IMSI}"], f"{A}/a1")
        proxy.marker = b"DELETE FROM sim_holders"
        await cards.let_go("a1")   # the session ends; the database fails it (logged)
        assert proxy.cut.is_set()
        assert _holds(direct) == {(CARD, "a1"), (f"imsi:{IMSI}", "a1"), ("name:a1", "a1")}
        _probed(spool)
        await cards.let_go("a1")   # the modem's next session ends (no card read)
    finally:
        lane.close()
    assert _holds(direct) == {("name:a1", "a1")}
    assert spool.card_holders.take([CARD, f"imsi:{IMSI}"], "box-b:202:0000bbbb-r2", "b1",
                                   lambda owner: False) is None
