"""A modem serving by its ICCID alone whose reask reads the IMSI while the database is away
(rev22a R1): the reask recorded the card with the session start's `_name_card`, which on a
database failure puts the modem in stand-by; nothing put it back up once the database
returned, and the modem, serving and healthy by its row, took no message for the rest of its
session. The reask now records the card without touching the modem's state and asks again
later. A real daemon, simulated modem, throwaway PostgreSQL cluster stopped and started."""

from __future__ import annotations

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers
from tests.modempool.test_card_holders import CARD, IMSI
from tests.pg_cluster import throwaway_cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


async def test_a_serving_modem_whose_card_the_outage_kept_unrecorded_sends_after_it(tmp_path):
    with throwaway_cluster() as cluster:
        url = cluster.new_schema()
        async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=5,
                                 iccids={"m1": CARD}, imsis={"m1": IMSI}) as bank:
            bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=100000)
            config = tmp_path / "a.toml"
            config.write_text("\n".join([
                "[spool]", f'url = "{url}"', "", "[pool]", "silent_after = 6", "",
                "[retry]", "backoff = 0.2", "backoff_max = 1.0", "",
                "[[modem]]", 'name = "a1"', f'port = "{bank.devices[0]}"', ""]),
                encoding="utf-8")
            daemon = await DaemonProcess(config).start()
            await daemon.wait_for_log("a1: serves by its ICCID alone")
            cluster.stop()
            bank.clear_fault("m1", "command_error")   # the next ask reads the IMSI
            await daemon.wait_for_log("a1: could not record its SIM card")
            cluster.start()
            await daemon.wait_for_log("a1: reads the IMSI of its SIM card now")
            with Spool(url) as spool:
                msg = spool.enqueue("+8613800138000", "after the outage")
                await eventually(
                    lambda: spool.get(msg.id).state.value in ("sent", "delivered"),
                    timeout=60, what="the message sent by a1 once the database is back")
            assert await daemon.stop() == 0
