"""Several daemons, one queue: two daemons on two simulated banks share one PostgreSQL spool;
one of them is killed with SIGKILL ten times at random instants while the other carries on.

The simulators' network logs are the ground truth of what went out: every message is sent
exactly once or ambiguous (out at most once), none is lost, the other bank sent while one was
being killed, and a SIM's daily quota was reached, never passed, across the restarts.
"""

from __future__ import annotations

import asyncio
import collections
import random
from pathlib import Path

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers

# A hang guard only (each test runs in well under a minute on an idle machine); the waits
# below fail sooner when nothing moves.
pytestmark = pytest.mark.timeout(900)

WAVE = 30
MESSAGES = WAVE * 10
KILLS = 10
QUOTA = 30  # per day, for SIM a1


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def _config(path: Path, url: str, prefix: str, devices: list[str], quota: dict[str, int]) -> Path:
    lines = ["[spool]", f'url = "{url}"', "", "[pool]", "lease_seconds = 2", "",
             "[retry]", "backoff = 0.2", "backoff_max = 1.0", ""]
    for device in devices:
        name = prefix + Path(device).name[1:]  # m1 -> a1
        lines += ["[[modem]]", f'name = "{name}"', f'port = "{device}"']
        if name in quota:
            lines.append(f"per_day = {quota[name]}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _sent(bank: SimulatedBank) -> list[dict]:
    return [e for e in bank.network_log() if e["kind"] == "message"]


def _parts_by_reference(banks: dict[str, SimulatedBank]) -> dict[tuple, list[tuple[str, str]]]:
    """The long messages' parts on the network, by (recipient, concatenation reference): each
    part's (bank, modem). The sending path uses the message id modulo 256 as the reference;
    the long messages here (every tenth id) never share one."""
    found: dict[tuple, list[tuple[str, str]]] = collections.defaultdict(list)
    for name, bank in banks.items():
        for e in bank.network_log():
            if e["kind"] == "part" and e["concat"]:
                found[(e["to"], e["concat"][0])].append((name, e["modem"]))
    return found


async def test_two_daemons_share_one_queue_through_sigkills_of_one(tmp_path, pg_cluster):
    rng = random.Random(20261206)
    url = pg_cluster.new_schema()
    async with SimulatedBank(modems=2, directory=tmp_path / "a", seed=1) as bank_a, \
            SimulatedBank(modems=2, directory=tmp_path / "b", seed=2) as bank_b:
        for bank, latency in ((bank_a, 0.04), (bank_b, 0.25)):  # b: a slow survivor
            for name in ("m1", "m2"):
                bank.set_fault(name, "sms_latency", seconds=latency)
        config_a = _config(tmp_path / "a.toml", url, "a", bank_a.devices, {"a1": QUOTA})
        config_b = _config(tmp_path / "b.toml", url, "b", bank_b.devices, {})
        spool = Spool(url)
        numbers = ["+8613800138000", "+8613012345678", "+8618912345678", "+8613912345678"]

        def wave(first: int) -> None:
            """WAVE messages; every third only bank a's SIMs may send, so that each life of
            the victim finds work the survivor cannot take from it."""
            spool.enqueue_many([
                {"to": numbers[i % 4], "sims": ["a1", "a2"] if i % 3 == 0 else None,
                 "text": f"scale-out {i}" + (" with a long tail" * 12 + f" end {i}"
                                             if i % 10 == 0 else "")}
                for i in range(first, first + WAVE)])

        def waiting_for_a1() -> list:
            """Messages a1 sent part of before its daemon was killed between two parts: queued
            for a1 to send the rest (the phone joins parts from one sender only), waiting for
            tomorrow once a1's day has no room for them (the dispatcher asks room for all)."""
            spent = spool.sent_counts("a1")[1]
            return [m for m in spool.list(state="queued") if m.sims == ("a1",)
                    and spool.sent_parts(m.id) and spent + m.parts_total > QUOTA]

        def settled() -> int:
            counts = spool.counts()
            return (counts["sent"] + counts["delivered"] + counts["ambiguous"]
                    + len(waiting_for_a1()))

        survivor = await DaemonProcess(config_b).start()
        b_at_kill = []   # bank b's SMS on the network at each kill: it carries on meanwhile
        for kill in range(KILLS):
            wave(kill * WAVE)
            victim = DaemonProcess(config_a)
            before = len(_sent(bank_a))
            await victim.start(wait_ready=rng.random() < 0.7)
            if rng.random() < 0.5:
                await eventually(lambda: len(_sent(bank_a)) > before, what="progress on bank a")
            await asyncio.sleep(rng.uniform(0.0, 0.3))  # the random moment of death
            await victim.kill()
            b_at_kill.append(len(_sent(bank_b)))
        last = await DaemonProcess(config_a).start()
        await eventually(lambda: settled() == MESSAGES, progress=settled,
                         what="every message settled")
        assert await last.stop() == 0
        assert await survivor.stop() == 0
        waiting = {m.id: m.text for m in waiting_for_a1()}
        recovered = [e for e in spool.events() if e["kind"] == "lease-recovered"]
        assert recovered, "no kill caught the victim holding a lease"

    sent_a, sent_b = _sent(bank_a), _sent(bank_b)
    on_network = collections.Counter(e["text"] for e in sent_a + sent_b)
    parts = collections.Counter(e["text"] for bank in (bank_a, bank_b)
                                for e in bank.network_log() if e["kind"] == "part")
    pieces = _parts_by_reference({"a": bank_a, "b": bank_b})
    by_state = collections.defaultdict(list)
    for message in spool.list():
        by_state[message.state.value].append(message)
        if message.state.value in ("sent", "delivered"):
            assert on_network[message.text] == 1, message
        elif message.id in waiting:   # its parts out came from a1 only, the rest not yet
            # a part's log entry carries its own piece of the text: found by the message's
            # recipient and concatenation reference (unique here: see _parts_by_reference)
            key = (message.to, message.id % 256)
            assert not on_network[message.text] and len(pieces[key]) == len(
                spool.sent_parts(message.id)), message
            assert {modem for bank, modem in pieces[key]} == {("a", "m1")}, message
        else:
            assert message.state.value == "ambiguous", message
            assert on_network[message.text] <= 1, message
    assert set(on_network) <= {m.text for m in spool.list()}  # nothing the spool does not know
    assert max(parts.values()) == 1                            # no part went out twice
    assert len(by_state["ambiguous"]) <= KILLS * 2             # at most one per modem per kill
    assert sent_a and b_at_kill[-1] > b_at_kill[0]             # b sent between the kills
    # a1's quota held across every restart: a part that may have gone out when its daemon died
    # counts against the quota of the next life. It was reached, never passed: the card's day
    # is QUOTA parts, each on the network or in doubt (ambiguous: not known to have left).
    a1_parts = sum(1 for e in bank_a.network_log() if e["kind"] == "part" and e["modem"] == "m1")
    in_doubt = spool.rows("SELECT count(*) FROM parts WHERE sim = 'a1' AND state = 'ambiguous'")
    assert spool.sent_counts("a1")[1] == QUOTA
    assert QUOTA - in_doubt[0][0] <= a1_parts <= QUOTA, (a1_parts, in_doubt)
    spool.close()
    print(f"\n{KILLS} kills of one of two daemons: bank a sent {len(sent_a)}, bank b "
          f"{len(sent_b)} ({b_at_kill[0]} to {b_at_kill[-1]} from the first kill to the last), "
          f"{len(by_state['ambiguous'])} ambiguous, {len(waiting)} waiting for a1's quota, "
          f"a1 {a1_parts} parts (quota {QUOTA})")


async def test_a_sims_daily_quota_holds_across_two_daemons_by_its_iccid(tmp_path, pg_cluster):
    """A SIM card moved from a box to another (here: two simulated banks whose first SIMs have
    the same ICCID, under the names a1 and b1) keeps its day: a per_day of 6, 4 spent on the
    first box, leaves 2 for the second, whatever it is called there."""
    url = pg_cluster.new_schema()
    async with SimulatedBank(modems=1, directory=tmp_path / "a", seed=7) as bank_a, \
            SimulatedBank(modems=2, directory=tmp_path / "b", seed=7) as bank_b:
        assert bank_a.modems[0].iccid == bank_b.modems[0].iccid  # one card, two boxes
        for bank in (bank_a, bank_b):
            for info in bank.modems:
                bank.set_fault(info.name, "sms_latency", seconds=0.2)
        config_a = _config(tmp_path / "a.toml", url, "a", bank_a.devices, {"a1": 6})
        config_b = _config(tmp_path / "b.toml", url, "b", bank_b.devices, {"b1": 6})
        with Spool(url) as spool:
            spool.enqueue_many({"to": "+8613800138000", "text": f"first box {i}", "sims": ["a1"]}
                               for i in range(4))
            first = await DaemonProcess(config_a).start()
            await eventually(lambda: len(_sent(bank_a)) == 4, what="4 sent from a1")
            assert await first.stop() == 0
            spool.enqueue_many({"to": "+8613800138000", "text": f"second box {i}",
                                "sims": ["b1"]} for i in range(6))
            spool.enqueue("+8613800138000", "after them", sims=["b2"])
            second = await DaemonProcess(config_b).start()
            await eventually(lambda: {e["text"] for e in _sent(bank_b)} >= {
                "after them", "second box 0", "second box 1"}, what="b1's two and b2's one")
            assert await second.stop() == 0
            left = [m.text for m in spool.list(state="queued")]
            card = spool.sent_counts("b1")
    from_b1 = [e["text"] for e in _sent(bank_b) if e["modem"] == "m1"]
    assert len(_sent(bank_a)) == 4 and from_b1 == ["second box 0", "second box 1"]
    assert sorted(left) == [f"second box {i}" for i in range(2, 6)]
    assert card[1:] == (6, 6)


# The database away under running daemons: tests/modempool/test_database_outage.py.
