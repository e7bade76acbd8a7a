"""A modem that reads neither its card's ICCID nor its IMSI for a moment (rev20b M1): CIMI
answering ERROR just after the PIN, on a firmware with no ICCID command. The old code served
such a modem unchecked for its whole session (no hold, so a clone elsewhere sent too); now it
stands by, is asked again every heartbeat, and takes its card by its IMSI once it reads it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, sent_or_delivered_count
from tests.modempool.test_card_holders import CARD, IMSI, _config, no_leftover_daemons  # noqa

pytestmark = pytest.mark.timeout(300)


@contextlib.asynccontextmanager
async def cimi_failing(tmp_path: Path, seed: int, times: int | None,
                       ) -> AsyncIterator[DaemonProcess]:
    """A daemon on one modem with no ICCID command whose AT+CIMI answers ERROR `times` times
    (None: always)."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=seed,
                             iccids={"m1": None}, imsis={"m1": IMSI}) as bank:
        bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=times)
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, None)
        yield await DaemonProcess(config).start()


async def test_a_modem_that_reads_its_imsi_only_later_takes_its_card_by_it(tmp_path):
    async with cimi_failing(tmp_path, 36, 2) as daemon:
        await daemon.wait_for_log("s1: sends nothing: reads neither the ICCID nor the IMSI of "
                                  "its SIM card (yet)")
        with Spool(tmp_path / "spool.db") as spool:
            await eventually(lambda: spool.card_holders(), what="the card taken")
            held = [(h["iccid"], h["modem"]) for h in spool.card_holders()]
            spool.enqueue("+8613800138000", "after its IMSI")
            await eventually(lambda: sent_or_delivered_count(spool) == 1, what="sent")
        assert await daemon.stop() == 0
    assert held == [(f"imsi:{IMSI}", "s1")]
    assert "serves unchecked" not in daemon.output()


async def test_a_modem_that_never_reads_its_card_serves_unchecked_after_a_few_beats(tmp_path):
    """Asked IDENTIFY_TRIES times: a modem whose firmware reads neither still sends, and says
    that a clone of its card cannot be told apart."""
    async with cimi_failing(tmp_path, 37, None) as daemon:
        await daemon.wait_for_log("s1: reads neither ICCID nor IMSI: a clone of its SIM card "
                                  "elsewhere cannot be told apart; it serves unchecked")
        with Spool(tmp_path / "spool.db") as spool:
            spool.enqueue("+8613800138000", "unchecked")
            await eventually(lambda: sent_or_delivered_count(spool) == 1, what="sent")
            held = spool.card_holders()
        assert await daemon.stop() == 0
    assert held == []


@contextlib.asynccontextmanager
async def iccid_only_and_imsi_clone(tmp_path: Path, seed: int, cimi_errors: int,
                                    ) -> AsyncIterator[tuple[SimulatedBank, DaemonProcess]]:
    """One card in two modems of a daemon: m1 reads its ICCID, its AT+CIMI answering ERROR
    `cimi_errors` times (a SIM busy after its PIN); m2 (a clone, or the card in a box whose
    firmware has no ICCID command) reads only the IMSI."""
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=seed,
                             iccids={"m1": CARD, "m2": None},
                             imsis={"m1": IMSI, "m2": IMSI}) as bank:
        bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=cimi_errors)
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, None)
        yield bank, await DaemonProcess(config).start()


async def eight_sent(bank: SimulatedBank, spool: Spool) -> tuple[set[str], set[str]]:
    """Eight messages sent: the modems (simulator names) that sent parts of them, and the
    modems (daemon names) holding the card then."""
    before = len(bank.network_log())
    spool.enqueue_many({"to": "+8613800138000", "text": f"one card {i}"} for i in range(8))
    await eventually(lambda: sent_or_delivered_count(spool) == 8, what="all eight sent")
    senders = {e["modem"] for e in bank.network_log()[before:] if e["kind"] == "part"}
    return senders, {h["modem"] for h in spool.card_holders()}


async def test_a_modem_reading_only_the_iccid_for_a_moment_meets_an_imsi_only_clone(tmp_path):
    """m1's AT+CIMI answers ERROR once. The old code took {ICCID} for m1 and {imsi:IMSI} for
    m2, no key in common, and both sent from the card (audit21 H3); now m1 asks again until it
    reads the IMSI too, so the two meet on it and one stands by."""
    async with iccid_only_and_imsi_clone(tmp_path, 33, 1) as (bank, daemon):
        await daemon.wait_for_log("s1: sends nothing: reads no IMSI of its SIM card (yet)")
        with Spool(tmp_path / "spool.db") as spool:
            senders, held = await eight_sent(bank, spool)
        assert await daemon.stop() == 0
    assert len(senders) == 1 and len(held) == 1, (held, senders)


async def test_a_modem_serving_by_its_iccid_alone_is_asked_again_and_meets_its_clone(tmp_path):
    """m1's AT+CIMI answers ERROR through its first identify and the three asks after it, so
    it serves by its ICCID alone, while m2 holds the card by the IMSI. The old code never
    asked m1 again for the whole session, and both sent from one card; now m1 is asked again
    while it serves, reads the IMSI, is refused the card and stands by."""
    async with iccid_only_and_imsi_clone(tmp_path, 34, 4) as (bank, daemon):
        await daemon.wait_for_log("s1: stops sending: its SIM card")
        with Spool(tmp_path / "spool.db") as spool:
            senders, held = await eight_sent(bank, spool)
        assert await daemon.stop() == 0
    assert senders == {"m2"} and held == {"s2"}, (held, senders)


async def test_a_modem_serving_unchecked_no_longer_counts_against_the_card_it_held(tmp_path):
    """Card X sat in s1 (its row names it) and moved to another box's modem s9 while the
    daemon was stopped; the card now in s1 reads neither key. Once s1 gives up asking and
    serves unchecked, its row forgets X: what it sends counts under s1's name, not against X's
    quota in s9 (rev21b M1: the row kept X's keys, and X was charged with s1's sends)."""
    with Spool(tmp_path / "spool.db") as spool:
        spool.name_sim_card("s1", CARD, IMSI)   # yesterday: X in s1
        spool.name_sim_card("s9", CARD, IMSI)   # today: X in s9, in another box
    async with cimi_failing(tmp_path, 38, None) as daemon:
        await daemon.wait_for_log("s1: reads neither ICCID nor IMSI: a clone of its SIM card "
                                  "elsewhere cannot be told apart; it serves unchecked")
        with Spool(tmp_path / "spool.db") as spool:
            spool.enqueue_many({"to": "+8613800138000", "text": f"unchecked {i}"}
                               for i in range(3))
            await eventually(lambda: sent_or_delivered_count(spool) == 3, what="all three sent")
        assert await daemon.stop() == 0
    with Spool(tmp_path / "spool.db") as spool:
        row = spool.sims.get("s1")
        assert (row["iccid"], row["imsi"]) == (None, None)
        assert spool.sims.sent_counts("s9")[1:] == (0, 0)   # X's quota untouched
        assert spool.sims.sent_counts("s1")[1:] == (3, 3)   # s1's sends counted as its own


async def test_a_modem_reading_its_iccid_but_never_its_imsi_says_it_serves_by_the_iccid(
        tmp_path):
    """rev21b L2: the fallback after IDENTIFY_TRIES beats is logged, not silent. Asked again
    while it serves, it reads the IMSI and no ICCID (AT+CCID answering ERROR once): a pair the
    spool does not know, so it asks again (rev22a R2: the ICCID read before was written beside
    that IMSI, which may be a card swapped in with no SIM event), reads both, and its row names
    the card by both, so the card's dedupe key and counts stay under its ICCID (rev21b: the
    old code wrote the row as another card's, IMSI only)."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=39,
                             iccids={"m1": CARD}, imsis={"m1": IMSI}) as bank:
        bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=None)
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, None)
        daemon = await DaemonProcess(config).start()
        await daemon.wait_for_log("s1: serves by its ICCID alone after 3 tries: a clone of its "
                                  "SIM card read by its IMSI only cannot be told apart")
        bank.set_fault("m1", "command_error", command="+CCID", code=500, count=1)
        await daemon.wait_for_log(f"s1: reads IMSI {IMSI} but not its SIM card's ICCID, a pair "
                                  "the spool does not know; asking again")
        await daemon.wait_for_log(f"s1: reads the IMSI of its SIM card now: holds it by {CARD}, "
                                  f"imsi:{IMSI}")
        with Spool(tmp_path / "spool.db") as spool:
            row = spool.sim("s1")
        assert await daemon.stop() == 0
    assert (row["iccid"], row["imsi"]) == (CARD, IMSI)


async def test_a_modem_reading_only_its_iccid_takes_the_imsi_the_spool_knows_for_it(tmp_path):
    """rev21b L2(b): m1's AT+CIMI always answers ERROR, m2 (a clone) reads the IMSI alone. The
    spool knows the card's IMSI (s1 read both yesterday), so m1 takes the card by its ICCID and
    that IMSI, meets m2's hold and stands by: one modem sends. The old code held m1 by its
    ICCID alone once its tries were up, and both sent from one card."""
    with Spool(tmp_path / "spool.db") as spool:
        spool.name_sim_card("s1", CARD, IMSI)
    async with iccid_only_and_imsi_clone(tmp_path, 40, None) as (bank, daemon):
        await daemon.wait_for_log(f"s1: reads no IMSI after 3 tries: takes its SIM card by its "
                                  f"ICCID and the IMSI the spool knows for it ({IMSI})")
        await daemon.wait_for_log(f"s1: sends nothing: its SIM card {CARD} is already served by "
                                  "modem s2 of this daemon")
        with Spool(tmp_path / "spool.db") as spool:
            senders, held = await eight_sent(bank, spool)
        assert await daemon.stop() == 0
    assert senders == {"m2"} and held == {"s2"}, (held, senders)
