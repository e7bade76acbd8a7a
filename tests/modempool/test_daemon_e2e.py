"""End to end: `modempool run` as a subprocess, simulated modems on ptys, a real SQLite spool."""

from __future__ import annotations

import collections
from datetime import timedelta
from pathlib import Path

import pytest

from modempool.spool import Spool, utcnow
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            modempool_cli, network_messages, states, write_config)

@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


pytestmark = pytest.mark.timeout(90)

MOBILE = "+8613800138000"
UNICOM = "+8613012345678"


@pytest.fixture
async def bank(tmp_path: Path):
    async with SimulatedBank(modems=3, directory=tmp_path / "bank", seed=6) as bank:
        yield bank


def sent_or_delivered(spool: Spool) -> list:
    return [m for m in spool.list() if m.state.value in ("sent", "delivered")]


async def test_load_spreads_within_limits_and_quotas_hold_across_a_restart(tmp_path, bank):
    config = write_config(tmp_path / "pool.toml", bank.devices,
                          modems={"m1": {"per_day": 4}, "m2": {"per_day": 4}, "m3": {"per_day": 2}})
    spool = Spool(tmp_path / "spool.db")
    for i in range(14):
        spool.enqueue(MOBILE if i % 2 else UNICOM, f"balance {i}")
    daemon = await DaemonProcess(config).start()
    await eventually(lambda: len(sent_or_delivered(spool)) == 10, what="10 sent")
    assert await daemon.stop() == 0                      # SIGTERM: a graceful stop
    assert "modempool stopped" in daemon.output()
    per_sim = collections.Counter(m.sim for m in sent_or_delivered(spool))
    assert per_sim == {"m1": 4, "m2": 4, "m3": 2}
    assert sorted(states(spool).values()).count("queued") == 4   # at the limit: skipped, not failed
    assert len(network_messages(bank)) == 10

    # After a restart the day's counts still hold: only a message for a SIM with room goes out.
    config.write_text(config.read_text().replace('name = "m3"\n', 'name = "m3"\n')
                      .replace("per_day = 2", "per_day = 3"), encoding="utf-8")
    spool.enqueue(MOBILE, "after the restart", sims=["m3"], priority=5)
    daemon = await DaemonProcess(config).start()
    await eventually(lambda: spool.get(15).state.value in ("sent", "delivered"), what="#15 sent")
    assert await daemon.stop() == 0
    assert spool.get(15).sim == "m3"
    assert sorted(states(spool).values()).count("queued") == 4
    assert len(network_messages(bank)) == 11
    sims = {row["name"]: row for row in spool.sims()}
    assert (sims["m1"]["sent_today"], sims["m2"]["sent_today"], sims["m3"]["sent_today"]) == (4, 4, 3)


async def test_failover_on_cms_error_and_permanent_errors_fail_at_once(tmp_path, bank):
    bank.set_fault("m1", "cms_error", code=38)           # network out of order: try another SIM
    config = write_config(tmp_path / "pool.toml", bank.devices,
                          retry={"quarantine_after": 50})
    spool = Spool(tmp_path / "spool.db")
    daemon = await DaemonProcess(config).start()          # every modem up: m1 is chosen first
    moved = spool.enqueue(MOBILE, "fails over", sims=["m1", "m2"])
    await eventually(lambda: spool.get(moved.id).state.value in ("sent", "delivered"))
    message = spool.get(moved.id)
    assert (message.sim, message.attempts) == ("m2", 2)
    assert [e["to"] for e in network_messages(bank)] == [MOBILE]

    bank.set_fault("m2", "cms_error", code=1)            # unassigned number: no SIM can help
    doomed = spool.enqueue(MOBILE, "unassigned", sims=["m2"])
    await eventually(lambda: spool.get(doomed.id).state.value == "failed")
    assert spool.get(doomed.id).attempts == 1
    assert "unassigned" in spool.get(doomed.id).error
    assert await daemon.stop() == 0
    assert len(network_messages(bank)) == 1


async def test_quarantine_after_repeated_errors_and_recovery(tmp_path, bank):
    bank.set_fault("m1", "cms_error", code=21)           # transfer rejected: a SIM problem
    bank.set_fault("m3", "no_registration")
    bank.set_fault("m2", "pin_locked")                   # and no PIN in the config
    config = write_config(tmp_path / "pool.toml", bank.devices,
                          retry={"quarantine_after": 2, "quarantine_seconds": 1.0})
    spool = Spool(tmp_path / "spool.db")
    daemon = await DaemonProcess(config).start()
    sims = lambda: {row["name"]: row for row in spool.sims()}  # noqa: E731
    await eventually(lambda: sims()["m3"]["state"] == "quarantined", what="m3 quarantined")
    assert "not registered" in sims()["m3"]["last_error"]
    assert sims()["m2"]["state"] == "quarantined" and "PIN" in sims()["m2"]["last_error"]
    for i in range(2):
        spool.enqueue(MOBILE, f"via m1 {i}", sims=["m1"])
    await eventually(lambda: sims()["m1"]["state"] == "quarantined", what="m1 quarantined")
    assert all(m.state.value == "queued" for m in spool.list())   # waiting, not failed
    bank.clear_fault("m1")
    bank.clear_fault("m3")
    bank.clear_fault("m2")
    await eventually(lambda: all(row["state"] == "up" for row in sims().values()),
                     what="all probed again and up")
    await eventually(lambda: len(sent_or_delivered(spool)) == 2, what="both sent via m1")
    third = spool.enqueue(MOBILE, "via m3", sims=["m3"])
    await eventually(lambda: spool.get(third.id).state.value in ("sent", "delivered"))
    assert await daemon.stop() == 0
    assert {m.sim for m in sent_or_delivered(spool)} == {"m1", "m3"}


async def test_unplug_and_replug_mid_run(tmp_path, bank):
    for name in ("m1", "m2", "m3"):
        bank.set_fault(name, "sms_latency", seconds=0.05)
    config = write_config(tmp_path / "pool.toml", bank.devices)
    spool = Spool(tmp_path / "spool.db")
    spool.enqueue_many([{"to": MOBILE, "text": f"plug {i}"} for i in range(60)])
    daemon = await DaemonProcess(config).start()
    await eventually(lambda: len(sent_or_delivered(spool)) >= 3)
    sim_state = lambda: spool.sim("m1")["state"]  # noqa: E731
    await bank.unplug("m1")
    await eventually(lambda: sim_state() == "down", what="m1 down")
    await eventually(lambda: len(sent_or_delivered(spool)) >= 12, what="others carry on")
    await bank.replug("m1")
    await eventually(lambda: sim_state() == "up", what="m1 back up")
    await eventually(lambda: all(s not in ("queued", "sending") for s in states(spool).values()),
                     timeout=30, what="all settled")
    late = spool.enqueue(MOBILE, "after replug", sims=["m1"])
    await eventually(lambda: spool.get(late.id).state.value in ("sent", "delivered"))
    assert await daemon.stop() == 0
    final = states(spool)
    ambiguous = [i for i, s in final.items() if s == "ambiguous"]
    assert len(ambiguous) <= 1                               # at most the one in flight on m1
    on_network = collections.Counter(e["text"] for e in network_messages(bank))
    for m in spool.list():
        assert on_network[m.text] == (1 if m.state.value in ("sent", "delivered") else
                                      on_network[m.text]), m
        assert on_network[m.text] <= 1, m


@pytest.mark.parametrize("reached_network", [False, True])
async def test_hung_modem_mid_send_makes_the_message_ambiguous_and_it_is_not_resent(
        tmp_path, bank, reached_network):
    config = write_config(tmp_path / "pool.toml", bank.devices, retry={"send_timeout": 1.0})
    spool = Spool(tmp_path / "spool.db")
    # The card's TP-MR before the hang is known: a report's proof starts from it.
    before = spool.enqueue(MOBILE, "before the hang", sims=["m1"])
    daemon = await DaemonProcess(config).start()
    await eventually(lambda: spool.get(before.id).state.value == "delivered", what="sent")
    bank.set_fault("m1", "hang_after_pdu", delivered=reached_network)
    hung = spool.enqueue(MOBILE, "into the void", sims=["m1"])
    await eventually(lambda: spool.get(hung.id).state.value == "ambiguous", what="ambiguous")
    bank.clear_fault("m1")
    after = spool.enqueue(MOBILE, "after the hang", sims=["m1"])
    await eventually(lambda: spool.get(after.id).state.value in ("sent", "delivered"),
                     timeout=30, what="m1 reopened and sending")
    if reached_network:  # its report waited on the modem: the network settles the question
        await eventually(lambda: spool.get(hung.id).state.value == "delivered",
                         what="settled by its delivery report")
    assert await daemon.stop() == 0
    message = spool.get(hung.id)
    assert [e["text"] for e in network_messages(bank)].count("into the void") == int(
        reached_network)                                      # never sent again
    if reached_network:
        assert message.attempts == 1 and [p["state"] for p in spool.parts(hung.id)] == [
            "delivered"]
        assert "ambiguity-resolved" in [e["kind"] for e in spool.events(hung.id)]
    else:
        assert (message.state.value, message.attempts) == ("ambiguous", 1)
        assert [p["state"] for p in spool.parts(hung.id)] == ["ambiguous"]


async def test_inbound_multipart_out_of_order_across_a_restart_and_delivery_reports(tmp_path, bank):
    config = write_config(tmp_path / "pool.toml", bank.devices)
    spool = Spool(tmp_path / "spool.db")
    daemon = await DaemonProcess(config).start()
    out = spool.enqueue(MOBILE, "status report please " * 10)      # two parts, two reports
    await eventually(lambda: spool.get(out.id).state.value == "delivered", what="delivered")
    assert len(spool.parts(out.id)) == 2
    # each report keeps the card its modem held (schema 22): the one that wrote the part
    written_by = {row[0] for row in spool.rows("SELECT card FROM parts WHERE message_id = ?",
                                               [out.id])}
    assert [row[0] for row in spool.rows("SELECT card FROM delivery_reports")] == [
        *written_by] * 2 and None not in written_by

    text = "这是一条很长的回复，" * 20
    await bank.inject("m2", UNICOM, text, out_of_order=True)
    await eventually(lambda: spool.inbound(), what="inbound stored")
    [row] = spool.inbound()
    assert (row["text"], row["sender"], row["sim"], row["complete"]) == (text, UNICOM, "m2", True)

    # Parts of one message on both sides of a crash: the first is stored, the rest after restart.
    second = "第二条长消息，分几段到达。" * 15
    injecting = bank.inject("m3", MOBILE, second, out_of_order=True, parts_delay=1.5)
    import asyncio
    task = asyncio.ensure_future(injecting)
    await eventually(lambda: spool.pending_inbound_parts(), what="first part stored")
    await daemon.kill()
    await task
    daemon = await DaemonProcess(config).start()
    await eventually(lambda: len(spool.inbound()) == 2, timeout=30, what="reassembled after restart")
    assert spool.inbound()[-1]["text"] == second
    assert spool.pending_inbound_parts() == []
    assert await daemon.stop() == 0


async def test_scheduled_expired_cancelled_held_and_priority(tmp_path, bank):
    config = write_config(tmp_path / "pool.toml", bank.devices[:1])
    spool = Spool(tmp_path / "spool.db")
    now = utcnow()
    expired = spool.enqueue(MOBILE, "too late", expires_at=now + timedelta(milliseconds=200))
    later = spool.enqueue(MOBILE, "not before", not_before=now + timedelta(seconds=2))
    cancelled = spool.enqueue(MOBILE, "cancelled")
    spool.cancel(cancelled.id)
    held = spool.enqueue(MOBILE, "held", held=True, campaign_id=7)
    low = spool.enqueue(MOBILE, "low priority", priority=0)
    high = spool.enqueue(MOBILE, "high priority", priority=9)
    await eventually(lambda: utcnow() > now + timedelta(milliseconds=250))
    daemon = await DaemonProcess(config).start()
    # A daemon slow to start (a loaded machine) finds `later` due too, and it is older than `low`:
    # wait for all three before comparing times.
    await eventually(lambda: all(spool.get(m.id).state.value in ("sent", "delivered")
                                 for m in (later, high, low)), what="scheduled message sent")
    assert spool.get(later.id).sent_at >= now + timedelta(seconds=2)
    assert spool.get(high.id).sent_at <= spool.get(low.id).sent_at
    assert spool.get(expired.id).state.value == "expired"
    assert spool.get(cancelled.id).state.value == "cancelled"
    assert spool.get(held.id).state.value == "queued"
    spool.release(7)
    await eventually(lambda: spool.get(held.id).state.value in ("sent", "delivered"))
    assert await daemon.stop() == 0
    texts = [e["text"] for e in network_messages(bank)]
    assert sorted(texts) == sorted(["not before", "held", "low priority", "high priority"])


async def test_client_ids_bad_numbers_and_bad_config_through_the_cli(tmp_path, bank):
    config = write_config(tmp_path / "pool.toml", bank.devices)
    daemon = await DaemonProcess(config).start()
    for _ in range(2):
        done = modempool_cli("send", "--config", str(config), "--client-id", "order-42", "13800138000",
                    "only once")
        assert done.returncode == 0, done.stderr
    spool = Spool(tmp_path / "spool.db")
    await eventually(lambda: sent_or_delivered(spool), what="sent")
    bad = modempool_cli("send", "--config", str(config), "12345", "to nowhere")
    assert bad.returncode != 0 and "not a valid number" in bad.stderr
    assert await daemon.stop() == 0
    assert [m.text for m in spool.list()] == ["only once"]
    assert [e["text"] for e in network_messages(bank)] == ["only once"]

    broken = tmp_path / "broken.toml"
    broken.write_text('[spool]\npath = "x.db"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n'
                      'per_day = "lots"\n', encoding="utf-8")
    run = modempool_cli("run", "--config", str(broken))
    assert run.returncode != 0
    assert "broken.toml" in run.stderr and "line 7" in run.stderr and "per_day" in run.stderr


async def test_run_simulate_needs_nothing_but_the_package(tmp_path):
    # No config file anywhere: the embedded default (./modempool.db) with --simulate 2.
    daemon = DaemonProcess(None, log=tmp_path / "run.log", args=("--simulate", "2"),
                           cwd=tmp_path, env={"HOME": str(tmp_path)})
    await daemon.start()
    assert "simulated bank of 2 modems" in daemon.output()
    spool = Spool(tmp_path / "modempool.db")
    message = spool.enqueue("13800138000", "hello from a simulated bank 你好")
    await eventually(lambda: spool.get(message.id).state.value == "delivered")
    assert await daemon.stop() == 0
    assert {row["name"]: row["state"] for row in spool.sims()} == {"m1": "stopped", "m2": "stopped"}
