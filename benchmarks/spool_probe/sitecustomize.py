"""For bench_http.py: how long each process of `modempool run` waited for the spool's write
lock and held it. On PYTHONPATH (first) with MODEMPOOL_SPOOL_PROBE=DIR set, every Python
process started (the daemon, its sidecar) times each SQLite write transaction and writes
DIR/<pid>.json at exit:

    {"argv": [...], "threads": {"<thread name>": {"transactions", "waited", "held", "longest_wait", "longest_hold"}}}

`waited`: seconds from asking for the transaction to BEGIN IMMEDIATE returning (the write
lock, and the engine's own thread lock); `held`: from there to COMMIT. The daemon's
"MainThread" is its event loop: whatever it waits for there, every modem waits for.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from contextlib import contextmanager

_directory = os.environ.get("MODEMPOOL_SPOOL_PROBE")


def _install(directory: str) -> None:
    from modempool.spool.sqlite_engine import SqliteEngine

    figures: dict[str, list[float]] = {}
    plain_tx = SqliteEngine.tx

    @contextmanager
    def timed_tx(self):  # type: ignore[no-untyped-def]
        nested = self.conn.in_transaction
        asked = time.perf_counter()
        with plain_tx(self) as conn:
            began = time.perf_counter()
            try:
                yield conn
            finally:
                if not nested:
                    ended = time.perf_counter()
                    row = figures.setdefault(threading.current_thread().name, [0, 0.0, 0.0, 0.0, 0.0])
                    row[0] += 1
                    row[1] += began - asked
                    row[2] += ended - began
                    row[3] = max(row[3], began - asked)
                    row[4] = max(row[4], ended - began)

    SqliteEngine.tx = timed_tx  # type: ignore[method-assign]

    def write() -> None:
        names = ("transactions", "waited", "held", "longest_wait", "longest_hold")
        with open(os.path.join(directory, f"{os.getpid()}.json"), "w") as out:
            json.dump({"argv": sys.argv, "threads": {
                name: dict(zip(names, row)) for name, row in figures.items()}}, out)

    atexit.register(write)


if _directory:
    _install(_directory)
