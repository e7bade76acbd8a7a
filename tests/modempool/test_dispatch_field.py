"""The dispatcher against SIMs as they really behave: a catch-all error that never stops, and
per-minute limits that must not become bursts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from at_commands import COMMANDS
from modempool.config import parse_config
from modempool.dispatch.daemon import Daemon
from simulator import SimulatedBank
from tests.modempool.daemon_harness import eventually, network_messages
from tests.modempool.test_dispatch import DONE, MOBILE, pool, state

pytestmark = pytest.mark.timeout(60)


async def test_a_sim_that_always_answers_the_catch_all_error_is_quarantined_at_once(tmp_path):
    # +CMS ERROR: 500 is classed temporary; counted anyway, the SIM goes out of rotation, and
    # what it holds goes to the other SIM at once, not after the (long) quarantine.
    toml = "[retry]\nquarantine_after = 2\nquarantine_seconds = 600\nbackoff = 0.05\n"
    async with pool(tmp_path, modems=2, toml=toml) as (bank, spool, _daemon):
        bank.set_fault("m1", "cms_error", code=500)
        sent = [spool.enqueue(MOBILE, f"catch-all {i}") for i in range(6)]
        await eventually(lambda: all(state(spool, m) in DONE for m in sent), timeout=30,
                         what="every message sent through m2")
        m1 = spool.sim("m1")
        assert m1["state"] == "quarantined" and "500" in m1["last_error"]
        assert {spool.get(m.id).sim for m in sent} == {"m2"}
        assert {e["modem"] for e in bank.network_log() if e["kind"] == "part"} == {"m2"}


async def test_a_per_minute_limit_spreads_the_sends_instead_of_a_burst(tmp_path):
    # 120 a minute: one every half second, not four in the first milliseconds of the minute.
    async with pool(tmp_path, modems=1, per_modem={"m1": "per_minute = 120\n"}) as (
            bank, spool, _daemon):
        queued_at = datetime.now(timezone.utc)
        sent = [spool.enqueue(MOBILE, f"paced {i}") for i in range(4)]
        await eventually(lambda: all(state(spool, m) in DONE for m in sent), timeout=30)
        started = sorted(datetime.fromisoformat(p["writing_at"].replace("Z", "+00:00"))
                         for m in sent for p in spool.parts(m.id))
        # The pace is decided before a part is marked and a loaded machine may delay any mark,
        # so the gap between two marks can shrink; only "after the queueing" is a bound that
        # load cannot break: the fourth send starts three paces (1.5 s) after the first could.
        assert len(started) == 4
        assert (started[-1] - queued_at).total_seconds() >= 1.5, started
        assert len(network_messages(bank)) == 4
        assert spool.sent_counts("m1")[1] == 4              # the day's counter as before



#: The slow bank's test runs at this fraction of real time: its modems answer after 1.5 s times
#: it, and every wait of theirs (`[timing]`) is this fraction of its default.
SCALE = 0.2


async def test_a_bank_whose_modems_answer_after_1_5_s_comes_up_and_sends(tmp_path, caplog):
    # Old serial modems, busy USB hubs, modems still registering: slow is not silent. A modem
    # answering after 1.5 s outlasts the first wait for its AT (1 s); its late answer teaches
    # the channel its pace, and every later wait grows with it. At a fifth of real time.
    slow = {"latency": {"seconds": 1.5 * SCALE}}
    waits = ", ".join(f"{name} = {command.timeout * SCALE:g}" for name, command in COMMANDS.items())
    caplog.set_level(logging.INFO, logger="modempool.modem")
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=3,
                             faults={"m1": slow, "m2": slow}) as bank:
        text = (f'[spool]\npath = "{tmp_path / "spool.db"}"\n\n'
                f"[timing]\nanswer_wait = {1.0 * SCALE:g}\ntimeouts = {{ {waits} }}\n")
        for device in bank.devices:
            text += f'\n[[modem]]\nname = "{Path(device).name}"\nport = "{device}"\n'
        config = parse_config(text, tmp_path / "pool.toml")
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, install_signals=False)
        running = asyncio.create_task(daemon.run())
        try:
            sent = [spool.enqueue(MOBILE, f"slow but alive {i}") for i in range(2)]
            await eventually(lambda: all(state(spool, m) in DONE for m in sent), timeout=45,
                             what="both modems up and sending")
            assert {row["name"]: row["state"] for row in spool.sims()} == {"m1": "up",
                                                                            "m2": "up"}
            downs = spool.db.execute("SELECT count(*) FROM events WHERE kind = 'sim-down'")
            assert downs.fetchone()[0] == 0                  # never declared dead
        finally:
            daemon.stop()
            await running
    assert len(network_messages(bank)) == 2
    # the slow path was taken: each modem's first answer came after its wait, and was learned
    learned = {record.name.rsplit(".", 1)[-1] for record in caplog.records
               if record.getMessage().startswith("answers slowly")}
    assert learned == {"m1", "m2"}
