"""One card read by its ICCID in one modem and by its IMSI only in another (a firmware
whose ICCID command answers ERROR, or a transient ERROR): two keys, one card."""
from __future__ import annotations

import pytest

from modempool.spool import Spool
from tests.modempool.test_card_holders import (  # noqa: F401 - the fixture
    A, B, CARD, IMSI, no_leftover_daemons, six_sent_by_one_daemon)

pytestmark = pytest.mark.timeout(300)


async def test_one_card_read_by_iccid_and_by_imsi_only_one_modem_sends(tmp_path):
    cards = {"iccids": {"m1": CARD, "m2": None}, "imsis": {"m1": IMSI, "m2": IMSI}}
    async with six_sent_by_one_daemon(tmp_path, cards) as (bank, daemon, spool, _):
        held = [(h["iccid"], h["modem"]) for h in spool.card_holders()]
        senders = {e["modem"] for e in bank.network_log() if e["kind"] == "part"}
        assert await daemon.stop() == 0
    assert len(senders) == 1, (held, senders)
    # the sender holds both keys (m1 reads both, m2 only the IMSI: whichever came up first)
    sender = "s" + sorted(senders)[0][1:]
    assert held in ([(CARD, "s1"), (f"imsi:{IMSI}", "s1")], [(f"imsi:{IMSI}", "s2")])
    assert {modem for _, modem in held} == {sender}


def test_a_card_s_two_keys_are_taken_together_and_a_dead_holder_loses_both(spool_target):
    """The spool's rule, both engines: a card read with its ICCID and IMSI holds both keys; a
    modem reading only the IMSI is refused while the holder lives, and takes the card from a
    dead holder, whose ICCID hold goes too (its marker probes that one)."""
    alive = lambda owner: False  # noqa: E731
    with Spool(spool_target) as spool:
        holders = spool.card_holders
        assert holders.take([CARD, f"imsi:{IMSI}"], A, "a1", alive) is None
        assert sorted(h["iccid"] for h in holders()) == [CARD, f"imsi:{IMSI}"]
        held = holders.take([f"imsi:{IMSI}"], B, "b1", alive)
        assert (held.owner, held.modem) == (A, "a1")
        assert holders.take([f"imsi:{IMSI}"], B, "b1", lambda owner: owner == A) is None
        assert [(h["iccid"], h["owner"]) for h in holders()] == [(f"imsi:{IMSI}", B)]
        assert holders.let_go(A, [CARD, f"imsi:{IMSI}"]) == 0
        assert holders.let_go(B, [CARD, f"imsi:{IMSI}"]) == 1


def test_a_card_counted_under_its_iccid_and_its_imsi_is_read_as_one_day(spool_target):
    """A card counted in a modem that read its ICCID, then in one that read only its IMSI:
    either modem's counts are the card's whole day."""
    with Spool(spool_target) as spool:
        spool.upsert_sim("x1", iccid=CARD, imsi=IMSI)
        spool.upsert_sim("y1", imsi=IMSI)
        spool.count_sent("x1", 2)
        spool.count_sent("y1", 3)
        assert spool.sent_counts("x1")[1:] == (5, 5)
        assert spool.sent_counts("y1")[1:] == (5, 5)
