"""On a database server the daemon's spool calls never hold up its event loop: while one of
them waits for the database (here a table locked by another connection, as a long migration or
a slow VACUUM FULL would), the other modems keep sending. The daemon is a real subprocess on a
real PostgreSQL spool; its modems are simulated on ptys."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import psycopg
import pytest

from modempool.config import parse_config
from modempool.dispatch.daemon import Daemon
from modempool.operator.forwarding import ForwardTargets
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            network_messages)
from tests.modempool.spool_driver import claim_next

pytestmark = pytest.mark.timeout(120)

FORWARD_TO = "+8613900139000"
STICKY_TO = "+8613812345678"


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def _config(path: Path, url: str, devices: list[str], extra: str = "") -> Path:
    lines = ["[spool]", f'url = "{url}"', "", extra, ""]
    for device in devices:
        lines += ["[[modem]]", f'name = "{Path(device).name}"', f'port = "{device}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _waiting_on_a_lock(spool: Spool, table: str) -> bool:
    """Whether a session of the cluster waits for a lock, in a statement that reads `table`."""
    rows = spool.engine.rows(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE ?", (f"%{table}%",))
    return rows[0][0] > 0


async def test_an_inbound_hook_waiting_for_the_database_leaves_the_other_modems_sending(
        tmp_path, pg_cluster):
    url = pg_cluster.new_schema()
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=5) as bank:
        with Spool(url) as spool:
            ForwardTargets(spool.db, "CN")  # its table exists before it is locked
            config = _config(tmp_path / "pool.toml", url, bank.devices,
                             f'[forward]\nto = ["{FORWARD_TO}"]')
            daemon = await DaemonProcess(config).start()
            with psycopg.connect(url) as locker:   # a transaction: the lock stays until rollback
                locker.execute("LOCK TABLE forward_targets IN ACCESS EXCLUSIVE MODE")
                await bank.inject(to="m1", sender="+8613912345678", text="明天见")
                # The forwarding hook of that SMS now waits for the lock, in the daemon...
                await eventually(lambda: _waiting_on_a_lock(spool, "forward_targets"),
                                 what="the forwarding hook waiting for the table lock")
                assert [m["text"] for m in spool.inbound()] == ["明天见"]  # stored before the hooks
                # ... and the daemon's other modem still sends.
                meanwhile = spool.enqueue("+8613800138000", "meanwhile", sims=["m2"])
                await eventually(lambda: [m for m in network_messages(bank)
                                          if m["text"] == "meanwhile"],
                                 what="m2 sending while the hook waits")
                assert spool.get(meanwhile.id).state.value in ("sending", "sent", "delivered")
                assert not [m for m in network_messages(bank) if m["to"] == FORWARD_TO]
                locker.rollback()
            # The hook goes on once the lock is gone: the SMS is forwarded.
            await eventually(lambda: [m for m in network_messages(bank) if m["to"] == FORWARD_TO],
                             what="the forward, once the lock is released")
            assert await daemon.stop() == 0


class RecallWatchedSpool(Spool):
    """A real PostgreSQL spool that notes the thread of each recall of the sticky strategy."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.recall_threads: set[int] = set()

    def last_sims_for(self, numbers):
        self.recall_threads.add(threading.get_ident())
        return super().last_sims_for(numbers)


async def test_sticky_recalls_a_recipients_sim_in_the_lane_not_on_the_loop(tmp_path, pg_cluster):
    url = pg_cluster.new_schema()
    with RecallWatchedSpool(url) as spool:
        # An earlier run sent to this recipient from m2.
        earlier = spool.enqueue(STICKY_TO, "earlier", sims=["m2"])
        claimed = claim_next(spool, "m2", "earlier:1/m2")
        assert claimed is not None and claimed.id == earlier.id
        spool.mark_part_writing(earlier.id, 1, 1, lease_owner="earlier:1/m2")
        spool.mark_last_part_sent(earlier.id, 1, None, 7, lease_owner="earlier:1/m2")
        async with SimulatedBank(modems=3, directory=tmp_path / "bank", seed=3) as bank:
            text = f'[spool]\nurl = "{url}"\n[pool]\nstrategy = "sticky"\n'
            for device in bank.devices:
                text += f'\n[[modem]]\nname = "{Path(device).name}"\nport = "{device}"\n'
            daemon = Daemon(parse_config(text, tmp_path / "pool.toml"), spool=spool,
                            install_signals=False)
            running = asyncio.create_task(daemon.run())
            try:
                await eventually(lambda: daemon.ready.is_set() or running.done())
                again = spool.enqueue(STICKY_TO, "again")
                await eventually(lambda: spool.get(again.id).state.value in ("sent", "delivered"),
                                 what="the message to the recipient sent")
            finally:
                daemon.stop()
                await running
        assert spool.get(again.id).sim == "m2"   # the SIM recalled from the spool
        assert spool.recall_threads and threading.get_ident() not in spool.recall_threads


async def test_a_ussd_answer_waiting_for_the_database_leaves_the_other_modems_sending(
        tmp_path, pg_cluster):
    url = pg_cluster.new_schema()
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=6) as bank:
        with Spool(url) as spool:
            config = _config(tmp_path / "pool.toml", url, bank.devices,
                             '[[balance]]\nussd = "*100#"')
            daemon = await DaemonProcess(config).start()
            await eventually(lambda: all((spool.sim(name) or {}).get("balance_at")
                                         for name in ("m1", "m2")),
                             what="the balance of each SIM asked at start")
            with psycopg.connect(url) as locker:   # m1's row, until rollback
                locker.execute("SELECT name FROM sims WHERE name = 'm1' FOR UPDATE")
                request = spool.requests.add("m1", "ussd", "*100#")
                # The answer, a balance, waits to be stored in m1's row, in the daemon...
                await eventually(lambda: _waiting_on_a_lock(spool, "sims"),
                                 what="the USSD answer waiting for m1's row")
                # ... and the daemon's other modem still sends.
                spool.enqueue("+8613800138000", "meanwhile", sims=["m2"])
                await eventually(lambda: [m for m in network_messages(bank)
                                          if m["text"] == "meanwhile"],
                                 what="m2 sending while the answer waits")
                assert spool.requests.get(request)["state"] == "running"
                locker.rollback()
            await eventually(lambda: spool.requests.get(request)["state"] == "done",
                             what="the USSD answer, once the row is free")
            assert "balance is" in spool.requests.get(request)["answer"]
            assert await daemon.stop() == 0


class PinWatchedSpool(Spool):
    """A real PostgreSQL spool that notes the thread of each call of the refused-PIN memory."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.pin_threads: dict[str, set[int]] = {}

    def _noted(self, call: str) -> None:
        self.pin_threads.setdefault(call, set()).add(threading.get_ident())

    def refused_pin(self, *args, **kwargs):
        self._noted("refused_pin")
        return super().refused_pin(*args, **kwargs)

    def record_refused_pin(self, *args, **kwargs):
        self._noted("record_refused_pin")
        return super().record_refused_pin(*args, **kwargs)

    def forget_refused_pin(self, *args, **kwargs):
        self._noted("forget_refused_pin")
        return super().forget_refused_pin(*args, **kwargs)


async def test_the_refused_pin_memory_is_asked_in_the_lane_not_on_the_loop(tmp_path, pg_cluster):
    """m1's SIM takes the configured PIN, m2's refuses it: the memory is read, forgotten and
    written for them, each call in a worker thread."""
    url = pg_cluster.new_schema()
    with PinWatchedSpool(url) as spool:
        async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=4) as bank:
            for name in ("m1", "m2"):
                bank.set_fault(name, "pin_locked", pin="1234")
            text = f'[spool]\nurl = "{url}"\n'
            for device, pin in zip(bank.devices, ("1234", "0000")):
                text += (f'\n[[modem]]\nname = "{Path(device).name}"\nport = "{device}"\n'
                         f'pin = "{pin}"\n')
            daemon = Daemon(parse_config(text, tmp_path / "pool.toml"), spool=spool,
                            install_signals=False)
            running = asyncio.create_task(daemon.run())
            try:
                await eventually(lambda: (spool.sim("m1") or {}).get("state") == "up"
                                 and (spool.sim("m2") or {}).get("state") == "locked"
                                 or running.done(), what="m1 up, m2 locked")
            finally:
                daemon.stop()
                await running
        assert spool.pin_refusal_of("m2") is not None and spool.pin_refusal_of("m1") is None
        assert set(spool.pin_threads) == {"refused_pin", "record_refused_pin", "forget_refused_pin"}
        assert threading.get_ident() not in set().union(*spool.pin_threads.values())
