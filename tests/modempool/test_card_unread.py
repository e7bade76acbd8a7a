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
from tests.modempool.daemon_harness import DaemonProcess, eventually
from tests.modempool.test_card_holders import IMSI, _config, no_leftover_daemons  # noqa

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
            await eventually(lambda: spool.counts()["sent"] + spool.counts()["delivered"] == 1,
                             what="sent")
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
            await eventually(lambda: spool.counts()["sent"] + spool.counts()["delivered"] == 1,
                             what="sent")
            held = spool.card_holders()
        assert await daemon.stop() == 0
    assert held == []
