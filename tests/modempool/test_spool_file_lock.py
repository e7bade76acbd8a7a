"""The lock beside an SQLite spool file (one writer process): a holder that removes the lock
file as it lets go must not leave two processes each holding a lock of their own."""

from __future__ import annotations

import fcntl

import pytest

from modempool.errors import PoolError
from modempool.spool import file_lock
from modempool.spool.file_lock import SpoolFileLock


def test_a_lock_file_removed_between_open_and_lock_is_taken_again_at_its_path(tmp_path,
                                                                            monkeypatch):
    spool = tmp_path / "pool.db"
    holder = SpoolFileLock(spool)
    holder.take("held")   # made the lock file: it removes it as it lets go
    real_flock = fcntl.flock
    calls = []

    def holder_lets_go_first(file, operation):
        if not calls:   # the taker has opened the old file; the holder lets go before its flock
            holder.release(remove=True)
        calls.append(operation)
        return real_flock(file, operation)

    monkeypatch.setattr(file_lock.fcntl, "flock", holder_lets_go_first)
    taker = SpoolFileLock(spool)
    taker.take("held")
    monkeypatch.undo()
    assert len(calls) == 2   # the removed file's lock was dropped, the file at the path locked
    with pytest.raises(PoolError, match="held"):
        SpoolFileLock(spool).take("held")   # a third process is refused: one holder only
    taker.release(remove=True)
    assert not (tmp_path / "pool.db.lock").exists()
