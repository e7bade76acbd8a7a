"""WAL checkpoints of the SQLite spool: who copies the WAL into the database file, and that the
WAL starts over even while another connection writes without pause."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from modempool.spool import Spool


def _in_database_file(path: Path) -> int:
    """Messages the database file itself holds (the WAL not read: what checkpoints copied)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


def _wal_salt(path: Path) -> bytes:
    """The WAL header's salts: SQLite draws new ones each time the WAL starts over."""
    with open(f"{path}-wal", "rb") as wal:
        return wal.read(24)[16:24]


def test_a_commit_past_the_backstop_checkpoints_and_none_below_it(tmp_path):
    path = tmp_path / "spool.db"
    Spool(path).close()   # the last connection to close checkpoints: the tables are in the file
    with Spool(path) as writer:
        writer.checkpoint_when_told()   # none at all: the rows stay in the WAL
        writer.enqueue_many({"to": f"1380013{i:04d}", "text": "通知"} for i in range(2000))
        assert _in_database_file(path) == 0
        writer.checkpoint_when_told(backstop=100)   # the WAL holds far more than 100 pages
        writer.enqueue("13800138000", "再一条")
        assert _in_database_file(path) == 2001


def test_checkpoints_let_the_wal_start_over_while_another_connection_commits_without_pause(tmp_path):
    path = tmp_path / "spool.db"
    with Spool(path) as checkpointer, Spool(path) as writer:
        writer.checkpoint_when_told()
        writer.enqueue("13800138000", "first")
        salt = _wal_salt(path)
        stop, written = threading.Event(), []

        def write_all_the_time() -> None:
            while not stop.is_set():
                written.append(writer.enqueue(f"1390013{len(written) % 10000:04d}", "load").id)

        thread = threading.Thread(target=write_all_the_time)
        thread.start()
        try:
            for _ in range(200):   # each a checkpoint while the writer commits
                checkpointer.checkpoint()
                if _wal_salt(path) != salt:
                    break
        finally:
            stop.set()
            thread.join()
        assert _wal_salt(path) != salt, "the WAL never started over"
        assert len(written) > 1
        assert {m.id for m in checkpointer.list(limit=len(written) + 10)} >= set(written)
