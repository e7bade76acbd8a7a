"""An SMS left on a card that box A stored (and died before deleting), the card now in
s1 of this daemon, whose sims row still names the card that was in it before."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import pdu
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually
from tests.modempool.test_card_holders import CARD, _config, no_leftover_daemons  # noqa

pytestmark = pytest.mark.timeout(300)


async def _daemon_takes_it_off_the_card(bank: SimulatedBank, tmp_path: Path,
                                        path: Path) -> list[tuple[str, str]]:
    """A daemon on the bank's m1 (s1) until the one SMS on its card is deleted from it: the
    spool's received messages then, (sim, text)."""
    store = bank.modem("m1").stores[bank.modem("m1").cpms[2]]
    assert store.used == 1
    config = _config(tmp_path / "one.toml", f'path = "{path}"', "s", bank.devices, None)
    daemon = await DaemonProcess(config).start()
    await eventually(lambda: store.used == 0, what="the SMS deleted from the card")
    assert await daemon.stop() == 0
    with Spool(path) as spool:
        return [(r["sim"], r["text"]) for r in spool.inbound()]


@pytest.mark.parametrize("run", range(4))
async def test_an_sms_left_on_a_moved_card_is_stored_once_by_the_daemon(tmp_path, run):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=35,
                             iccids={"m1": CARD}) as bank:
        pdus = await bank.inject("m1", "+8613912345678", "left on the card")
        decoded = pdu.decode_pdu(pdus[0])
        path = tmp_path / "spool.db"
        with Spool(path) as spool:
            spool.upsert_sim("a1", iccid=CARD)                  # box A knew the card
            assert spool.store_inbound(decoded.sender, "left on the card", sim="a1",
                                       received_at=decoded.timestamp)
            spool.upsert_sim("s1", iccid="89860099999999999999")   # s1's card before
        rows = await _daemon_takes_it_off_the_card(bank, tmp_path, path)
    print(rows)
    assert len(rows) == 1, rows


IMSI = "460001234567890"


@contextlib.asynccontextmanager
async def one_sms_on_the_card(tmp_path: Path, seed: int, iccid: str | None,
                              ) -> AsyncIterator[tuple[SimulatedBank, Any, Path]]:
    """A bank of one modem whose card (ICCID `iccid`, IMSI `IMSI`) holds one SMS: the bank,
    the SMS decoded, and where the spool goes."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=seed,
                             iccids={"m1": iccid}, imsis={"m1": IMSI}) as bank:
        pdus = await bank.inject("m1", "+8613912345678", "left on the card")
        yield bank, pdu.decode_pdu(pdus[0]), tmp_path / "spool.db"


@pytest.mark.parametrize("case", ["restart-without-iccid", "moved-to-imsi-only"])
async def test_an_sms_left_on_the_card_is_stored_once_when_the_modem_reads_no_iccid(tmp_path,
                                                                                   case):
    """audit21 H2, with the daemon. restart-without-iccid: s1 stored the SMS and was killed
    before deleting it; at the restart its AT+CCID answers ERROR once, so its first identify
    reads only the IMSI (the old `_name_card` then wrote iccid=NULL into s1's row and the SMS,
    handed over again, was keyed by the modem's name). moved-to-imsi-only: box A's a1 (which
    read both keys) stored it; the card is now in s1, a firmware with no ICCID command (the
    old key: s1's name)."""
    iccid = CARD if case == "restart-without-iccid" else None
    async with one_sms_on_the_card(tmp_path, 38, iccid) as (bank, decoded, path):
        with Spool(path) as spool:
            stored_by = "s1" if iccid else "a1"
            spool.upsert_sim(stored_by, iccid=CARD, imsi=IMSI)
            assert spool.store_inbound(decoded.sender, "left on the card", sim=stored_by,
                                       received_at=decoded.timestamp)
            if not iccid:
                spool.upsert_sim("s1", iccid="89860099999999999999", imsi="460009999999999")
        if iccid:
            bank.set_fault("m1", "command_error", command="+CCID", code=500, count=1)
        rows = await _daemon_takes_it_off_the_card(bank, tmp_path, path)
        with Spool(path) as spool:
            row = spool.sim("s1")
    assert rows == [(stored_by, "left on the card")], rows
    assert (row["iccid"], row["imsi"]) == (iccid, IMSI)


async def test_an_sms_stored_by_iccid_alone_is_stored_once_when_read_again_by_imsi_alone(
        tmp_path):
    """s1 read only its card's ICCID (AT+CIMI failing) when it stored the SMS, and was killed
    before deleting it; at the restart AT+CCID fails instead and s1 reads only the IMSI. The
    spool knows the two as one card's (counted under the ICCID with its IMSI in a1, which
    holds another card now): s1's row keeps the ICCID, so the SMS handed over again is found
    stored. The old code took the IMSI for another card and stored the SMS twice."""
    async with one_sms_on_the_card(tmp_path, 39, CARD) as (bank, decoded, path):
        with Spool(path) as spool:
            spool.name_sim_card("a1", CARD, IMSI)
            spool.sims.count_sent("a1")
            spool.name_sim_card("a1", "89860099999999999999", "460009999999999")
            spool.name_sim_card("s1", CARD, None)
            assert spool.store_inbound(decoded.sender, "left on the card", sim="s1",
                                       received_at=decoded.timestamp)
        bank.set_fault("m1", "command_error", command="+CCID", code=500, count=None)
        rows = await _daemon_takes_it_off_the_card(bank, tmp_path, path)
        with Spool(path) as spool:
            row = spool.sim("s1")
    assert rows == [("s1", "left on the card")], rows
    assert (row["iccid"], row["imsi"]) == (CARD, IMSI)
