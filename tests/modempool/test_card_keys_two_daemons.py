"""One card in two live daemons on one PostgreSQL spool, read differently by their modems: by
ICCID and IMSI in one and by its IMSI alone in the other (a firmware with no ICCID command:
rev20b H2, fixed by taking both keys together), or by its IMSI alone in both. One daemon's
modem sends, the other's stands by; once the sender is killed, the other takes the card over
and sends only what the card's day has left: its counts (under `iccid:` in one, `imsi:` in
the other) are one day.

Real daemons (subprocesses) on two simulated banks and the suite's cluster."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually
from tests.modempool.test_card_holders import (IMSI, _config, _parts, _status,  # noqa: F401
                                               a_sends_two_then_stalls,
                                               b_takes_the_rest_of_the_day,
                                               no_leftover_daemons)

pytestmark = pytest.mark.timeout(300)

CARD = "89860012345678908888"

#: The ICCID bank a's modem reads (None: it has no ICCID command); bank b's reads none.
READS = {"iccid-and-imsi-then-imsi-only": CARD, "imsi-only-in-both": None}


@contextlib.asynccontextmanager
async def one_card_read_two_ways(tmp_path: Path, url: str, iccid_a: str | None,
                                 per_day: int, seed: int) -> AsyncIterator[tuple[Any, ...]]:
    """Bank a and bank b, one modem each holding the card (IMSI `IMSI`; ICCID `iccid_a` in
    a's, none read in b's), and a config for a daemon on each sharing `url`."""
    async with SimulatedBank(modems=1, directory=tmp_path / "a", seed=seed,
                             iccids={"m1": iccid_a}, imsis={"m1": IMSI}) as bank_a, \
            SimulatedBank(modems=1, directory=tmp_path / "b", seed=seed + 1,
                          iccids={"m1": None}, imsis={"m1": IMSI}) as bank_b:
        yield (bank_a, bank_b,
               _config(tmp_path / "a.toml", f'url = "{url}"', "a", bank_a.devices, per_day),
               _config(tmp_path / "b.toml", f'url = "{url}"', "b", bank_b.devices, per_day))


@pytest.mark.parametrize("read", list(READS))
async def test_one_card_read_by_two_keys_is_sent_on_by_one_daemon_within_its_day(
        tmp_path, pg_cluster, read):
    quota = 6
    url = pg_cluster.new_schema()
    async with one_card_read_two_ways(tmp_path, url, READS[read], quota, 41) as (
            bank_a, bank_b, config_a, config_b):
        bank_a.set_fault("m1", "sms_latency", seconds=1.0)   # slow, then stalled (below)
        bank_b.set_fault("m1", "sms_latency", seconds=0.3)
        with Spool(url) as spool:
            first = await DaemonProcess(config_a).start()
            await eventually(lambda: spool.card_holders(), what="a taking the card")
            second = await DaemonProcess(config_b).start()
            spool.enqueue_many({"to": "+8613800138000", "text": f"card {i}"}
                               for i in range(2 * quota))
            await a_sends_two_then_stalls(bank_a)
            line = (f"b1: sends nothing: its SIM card IMSI {IMSI} is served by another live "
                    f"daemon, {os.uname().nodename}:{first.proc.pid} (its modem a1)")
            await second.wait_for_log(line)
            assert _parts(bank_b, "m1") == []              # one card, one daemon: a's
            assert (await _status(config_b))["b1"]["state"] == "standby"
            queued = await b_takes_the_rest_of_the_day(first, second, bank_a, bank_b, spool,
                                                       quota)
    sent = len(_parts(bank_a, "m1")) + len(_parts(bank_b, "m1"))
    assert sent <= quota, (sent, quota)   # the day's quota held across both daemons and keys
    assert queued >= quota                # what the card's day had no room for waits
