"""A modem serving by its ICCID alone that reads its card's IMSI later (`dispatch/card_reask`)
reads the card's counts again by it (audit22 F1): the card's day, spent under its IMSI in
another box's IMSI-only modem, stops it. The old code took the card's hold by the IMSI but kept
the counts read by the ICCID alone (0), and the card sent a second day's quota. And a modem
whose card was swapped with no SIM event stops and identifies afresh, instead of taking the
new card's keys on the old card's counts and keeping the old card's hold."""

from __future__ import annotations

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually,
                                            sent_or_delivered_count)
from tests.modempool.test_card_holders import CARD, IMSI, _config, no_leftover_daemons  # noqa

pytestmark = pytest.mark.timeout(300)

TO = "+8613800138000"


async def test_a_card_whose_day_was_spent_under_its_imsi_stops_once_its_imsi_is_read(tmp_path):
    """per_day = 3. The card spent its day in s9, another box's modem that reads the IMSI
    alone. Here s1 reads its ICCID, its AT+CIMI answering ERROR through the first identify
    and the three tries after it, so it serves by the ICCID alone (counts 0), until the reask
    reads the IMSI. s2 holds a fresh card. Three messages after that: all on s2 (the old code
    sent some on s1, the card's fourth to sixth SMS of the day)."""
    with Spool(tmp_path / "spool.db") as spool:
        spool.name_sim_card("s9", None, IMSI)
        spool.sims.count_sent("s9", 3)
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=41,
                             iccids={"m1": CARD}, imsis={"m1": IMSI}) as bank:
        bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=4)
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, 3)
        daemon = await DaemonProcess(config).start()
        await daemon.wait_for_log("s2: up:")
        await daemon.wait_for_log("s1: reads the IMSI of its SIM card now")
        with Spool(tmp_path / "spool.db") as spool:
            before = len(bank.network_log())
            spool.enqueue_many({"to": TO, "text": f"after the reask {i}"} for i in range(3))
            await eventually(lambda: sent_or_delivered_count(spool) == 3, what="all three sent")
            spent = spool.sims.sent_counts("s1")[1]
        assert await daemon.stop() == 0
    senders = {e["modem"] for e in bank.network_log()[before:] if e["kind"] == "part"}
    assert senders == {"m2"}, senders
    assert spent == 3   # the card's day, as the spool knows it by s1's row


async def test_a_card_swapped_with_no_sim_event_ends_the_session(tmp_path):
    """s1 serves by its ICCID alone; its card is swapped for another with no SIM event, and
    the reask reads the new card's ICCID and IMSI. The modem stops (saying so) and identifies
    afresh: it holds the new card's keys, not the old card's ICCID besides them (the old code
    took the new keys on the old card's counts and kept the old hold)."""
    new_card, new_imsi = "89860012345678909999", "460009999999999"
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=42,
                             iccids={"m1": CARD}, imsis={"m1": IMSI}) as bank:
        bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=4)
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, None)
        daemon = await DaemonProcess(config).start()
        await daemon.wait_for_log("s1: serves by its ICCID alone")
        card = bank.modem("m1").sim
        card.iccid, card.imsi = new_card, new_imsi   # swapped under the daemon's feet
        await daemon.wait_for_log(f"s1: stops sending: its SIM card changed (it reads ICCID "
                                  f"{new_card} now, not {CARD}): identifies it afresh")
        with Spool(tmp_path / "spool.db") as spool:
            await eventually(lambda: {h["iccid"] for h in spool.card_holders()}
                             == {new_card, f"imsi:{new_imsi}"}, what="the new card held alone")
        assert await daemon.stop() == 0
