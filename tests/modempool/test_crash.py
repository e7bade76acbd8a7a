"""Crash test: SIGKILL the daemon at random moments during a run; nothing lost, nothing sent twice.

The simulator's network log is the ground truth of what went out. At the end every message in the
spool is either sent (and on the network exactly once) or ambiguous (on the network at most
once); none is left queued, none failed, and the network saw nothing the spool does not know.
Delivery reports settle some of the ambiguous ones (the network proves they went out): the test
waits for the reports and prints how many ambiguous messages arose and how many remain.
"""

from __future__ import annotations

import asyncio
import collections
import random
from pathlib import Path

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            network_messages, write_config)

@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


# A hang guard only (it runs in about a minute on an idle machine, several at load 15); the
# waits below fail sooner when nothing moves.
pytestmark = pytest.mark.timeout(900)

MESSAGES = 480  # enough that the 20 kills land before the queue drains, on an idle machine too
KILLS = 20


async def test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(tmp_path: Path):
    rng = random.Random(20261125)
    async with SimulatedBank(modems=4, directory=tmp_path / "bank", seed=11) as bank:
        for name in ("m1", "m2", "m3", "m4"):
            bank.set_fault(name, "sms_latency", seconds=0.04)
        config = write_config(tmp_path / "pool.toml", bank.devices)
        spool = Spool(tmp_path / "spool.db")
        numbers = ["+8613800138000", "+8613012345678", "+8618912345678", "+8613912345678"]
        spool.enqueue_many([
            {"to": numbers[i % 4],
             "text": f"crash test {i}" + (" with a long tail" * 12 + f" end {i}" if i % 10 == 0
                                          else "")}
            for i in range(MESSAGES)])

        def settled() -> int:
            counts = spool.counts()
            return counts.get("sent", 0) + counts.get("delivered", 0) + counts.get("ambiguous", 0)

        kills = 0
        while kills < KILLS:
            daemon = DaemonProcess(config)
            before = len(network_messages(bank))
            await daemon.start(wait_ready=rng.random() < 0.7)
            if rng.random() < 0.5:
                # Make sure this life sends something, then kill it at a random instant.
                await eventually(lambda: len(network_messages(bank)) > before, what="progress")
            await asyncio.sleep(rng.uniform(0.0, 0.25))   # the random moment of death
            await daemon.kill()
            kills += 1
        assert settled() < MESSAGES, "the run ended before the kills did: make it longer"

        final_start = len(bank.network_log())
        daemon = await DaemonProcess(config).start()
        await eventually(lambda: settled() == MESSAGES, progress=settled,
                         what="every message settled")

        def reports_due() -> int:
            """Reports the final daemon must see: those kept on a modem (it sweeps them) and
            those shown to it live (a +CDS shown to a killed daemon is gone, as on hardware)."""
            log = bank.network_log()
            return (sum(e["kind"] == "report" and e["fate"] == "stored" for e in log)
                    + sum(e["kind"] == "report" and e["fate"] == "shown"
                          for e in log[final_start:]))

        def reports() -> int:
            return spool.rows("SELECT count(*) FROM delivery_reports")[0][0]

        await eventually(lambda: reports() >= reports_due(), progress=reports,
                         what="the reports kept on the modems and shown live are stored")
        assert await daemon.stop() == 0

    on_network = collections.Counter(e["text"] for e in network_messages(bank))
    parts_on_network = collections.Counter(e["text"] for e in bank.network_log()
                                           if e["kind"] == "part")
    by_state = collections.defaultdict(list)
    for message in spool.list():
        by_state[message.state.value].append(message)
        times = on_network[message.text]
        if message.state.value in ("sent", "delivered"):
            assert times == 1, (message, times)
        else:
            assert message.state.value == "ambiguous", message
            assert times <= 1, (message, times)
    assert set(on_network) <= {m.text for m in spool.list()}
    assert max(parts_on_network.values()) == 1                  # no part went out twice
    assert not by_state["queued"] and not by_state["sending"] and not by_state["failed"]
    # Ambiguous only when caught mid-write by a kill: at most one per modem per kill.
    arose = {row[0] for row in spool.db.execute(
        "SELECT message_id FROM events WHERE kind = 'ambiguous' "
        "OR (kind = 'lease-recovered' AND detail = 'ambiguous')")}
    resolved = {row[0] for row in spool.db.execute(
        "SELECT message_id FROM events WHERE kind = 'ambiguity-resolved'")}
    assert len(arose) <= KILLS * 4
    assert {m.id for m in by_state["ambiguous"]} == arose - resolved
    assert all(on_network[spool.get(i).text] == 1 for i in resolved)  # proven, and true
    print(f"\n{KILLS} kills: {len(by_state['sent']) + len(by_state['delivered'])} sent, "
          f"{len(arose)} ambiguous arose, {len(by_state['ambiguous'])} remain after the "
          f"delivery reports ({len(resolved)} settled by a report; of those remaining "
          f"{sum(1 for m in by_state['ambiguous'] if on_network[m.text])} are on the network)")
