"""What keeps the API's slowest answers near its typical ones (modempool/web/server.py, docs/http.md
"Latency"): the server's commits leave WAL checkpoints to a thread of their own, and a server
process freezes its start-up heap out of the garbage collector's full passes. The figures are
in benchmarks/bench_http.py; these tests hold the mechanisms."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from pathlib import Path

from modempool.config import load_config
from modempool.web.server import serve_api


def _in_database_file(path: Path) -> int:
    """Messages the database file itself holds (the WAL not read: what checkpoints copied)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


async def test_serve_copies_the_wal_into_the_database_file_itself(config_path):
    config = load_config(config_path)
    spool = config.open_spool()
    spool.close()   # the tables are in the database file now
    spool = config.open_spool()
    spool.checkpoint_when_told()   # this writer leaves its rows in the WAL
    spool.enqueue_many({"to": f"1380013{i:04d}", "text": "通知"} for i in range(300))
    assert _in_database_file(config.spool_path) == 0
    stop = asyncio.Event()
    server = asyncio.create_task(serve_api(config, None, stop=stop, webhooks=False))
    try:
        deadline = time.monotonic() + 30
        while _in_database_file(config.spool_path) < 300:   # no event tells a checkpoint
            assert time.monotonic() < deadline, "the server never checkpointed"
            assert not server.done(), server
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await server
        spool.close()


async def test_a_server_process_freezes_what_it_made_while_starting(config_path):
    config = load_config(config_path)
    stop, frozen = asyncio.Event(), []

    def ready() -> None:
        frozen.append(gc.get_freeze_count())
        stop.set()

    gc.unfreeze()
    try:
        await serve_api(config, None, stop=stop, webhooks=False, ready=ready, freeze_heap=True)
    finally:
        gc.unfreeze()   # the test process goes on collecting as before
    assert frozen and frozen[0] > 10_000   # the modules, the app, the spool: all of start-up
