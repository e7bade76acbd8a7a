"""Online backup: a consistent copy while another process keeps writing to the spool."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from modempool.operator.backup import backup
from modempool.errors import PoolError
from modempool.spool import Spool

WRITER = r"""
import sys
from pathlib import Path
from modempool.spool import Spool

spool = Spool(sys.argv[1])
stop = Path(sys.argv[2])
i = 0
while not stop.exists():
    # each transaction adds a pair: a consistent snapshot never holds half a pair
    spool.enqueue_many([{"to": "13800138000", "text": f"{i} a", "client_id": f"pair:{i}:a"},
                        {"to": "13900139000", "text": f"{i} b", "client_id": f"pair:{i}:b"}])
    i += 1
    if i == 1:
        print("ready", flush=True)
print(i, flush=True)
"""


def test_backup_is_consistent_while_another_process_writes(tmp_path):
    source = tmp_path / "spool.db"
    spool = Spool(source)
    spool.enqueue_many([{"to": "13700137000", "text": "x" * 200} for _ in range(2000)])
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        counts = []
        for n in range(3):
            result = backup(source, tmp_path / f"copy{n}.db")
            copy = sqlite3.connect(result.path)
            assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            halves = dict(copy.execute(
                "SELECT substr(client_id, -1), COUNT(*) FROM messages WHERE client_id LIKE 'pair:%'"
                " GROUP BY 1").fetchall())
            assert halves["a"] == halves["b"] >= 1
            assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert Path(result.path).stat().st_mode & 0o777 == 0o600   # a copy of every SMS: private
            counts.append(result.tables["messages"])
            copy.close()
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=60)[0].split()[-1])
    assert writer.returncode == 0
    assert counts == sorted(counts) and counts[0] >= 2002
    assert spool.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2000 + 2 * written
    spool.close()


def test_backup_refuses_to_overwrite(tmp_path):
    source = tmp_path / "spool.db"
    Spool(source).close()
    target = tmp_path / "b.db"
    backup(source, target)
    with pytest.raises(PoolError, match="exists"):
        backup(source, target)
    backup(source, target, overwrite=True)
    with pytest.raises(PoolError, match="no database"):
        backup(tmp_path / "missing.db", tmp_path / "c.db")
    assert backup(source, tmp_path).path == str(tmp_path / "spool-backup.db")
