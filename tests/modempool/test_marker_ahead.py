"""A part's marker is committed while the modem is asked for its prompt (`sending.py`), so it
may be in the spool before the modem refuses the `AT+CMGS` itself. Such a refusal settles it:
the part is failed, never left writing (which a crash would turn into an ambiguous message),
and the message is retried or failed as for any refusal. The daemon runs in this event loop on
each engine (PostgreSQL: its spool calls in threads); the modem is simulated on a pty."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from modempool.config import parse_config
from modempool.dispatch.daemon import Daemon
from simulator import SimulatedBank
from tests.modempool.daemon_harness import eventually, network_messages

pytestmark = pytest.mark.timeout(60)

TO = "+8613800138000"


@contextlib.asynccontextmanager
async def one_modem(tmp_path: Path, target, retry: str):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=11) as bank:
        where = (f'url = "{target}"' if str(target).startswith("postgres")
                 else f'path = "{target}"')
        [device] = bank.devices
        config = parse_config(f'[spool]\n{where}\n\n[retry]\n{retry}\n\n[[modem]]\nname = "m1"\n'
                              f'port = "{device}"\n', tmp_path / "pool.toml")
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, install_signals=False)
        running = asyncio.create_task(daemon.run())
        await eventually(lambda: daemon.ready.is_set() or running.done())
        try:
            yield bank, spool
        finally:
            daemon.stop()
            await running
            spool.close()


async def test_a_send_refused_before_the_prompt_is_retried_and_goes_out_once(tmp_path,
                                                                           spool_target):
    async with one_modem(tmp_path, spool_target, "backoff = 0.05") as (bank, spool):
        bank.set_fault("m1", "command_error", command="+CMGS", code=500, count=1)
        message = spool.enqueue(TO, "refused at AT+CMGS, then sent")
        await eventually(lambda: spool.get(message.id).state.value in ("sent", "delivered"))
        final = spool.get(message.id)
        assert final.attempts == 2                        # the refusal was an attempt
        assert [e["text"] for e in network_messages(bank)] == [message.text]   # out once
        kinds = [e["kind"] for e in spool.events() if e["message_id"] == message.id]
        assert "requeued" in kinds and "ambiguous" not in kinds


async def test_a_send_refused_for_good_before_the_prompt_leaves_no_part_writing(tmp_path,
                                                                              spool_target):
    async with one_modem(tmp_path, spool_target, "max_attempts = 1") as (bank, spool):
        bank.set_fault("m1", "command_error", command="+CMGS", code=500)
        message = spool.enqueue(TO, "refused at AT+CMGS for good")
        await eventually(lambda: spool.get(message.id).state.value == "failed")
        assert [p["state"] for p in spool.parts(message.id)] in ([], ["failed"])
        assert spool.sent_counts("m1")[1] == 0            # nothing counted against the quota
        assert network_messages(bank) == []
