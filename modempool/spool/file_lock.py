"""One writer process per SQLite spool file: an exclusive lock on a file beside it
(`pool.db.lock`), held by the daemon while it runs and by `spool migrate` while it copies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from modempool.errors import PoolError


class SpoolFileLock:
    """The lock of the spool file `spool_path`. It is beside the file the path leads to
    (symlinks and relative paths resolved), so a second name for the same spool finds it."""

    def __init__(self, spool_path: str | Path) -> None:
        self.path = f"{os.path.realpath(spool_path)}.lock"
        self._file: IO[str] | None = None
        self._made = False   # the lock file did not exist before this lock was taken

    def take(self, refusal: str) -> None:
        """Hold the lock; PoolError(`refusal`) when another process holds it."""
        while True:
            self._made = not os.path.exists(self.path)
            file = open(self.path, "a+")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                raise PoolError(refusal) from None
            if _same_file(file, self.path):
                self._file = file
                return
            file.close()   # its holder removed it as it let go: lock the file there now

    def release(self, *, remove: bool = False) -> None:
        """Let the lock go; with `remove`, its file too when this lock made it (no empty
        sibling left beside a spool; removed while still held, so no one else holds it then)."""
        if self._file is not None:
            if remove and self._made:
                with contextlib.suppress(OSError):
                    os.unlink(self._file.name)
            self._file.close()
            self._file = None


def _same_file(file: IO[str], path: str) -> bool:
    """Whether `file` is still the one at `path` (not one removed after it was opened)."""
    try:
        opened, there = os.fstat(file.fileno()), os.stat(path)
        return (opened.st_dev, opened.st_ino) == (there.st_dev, there.st_ino)
    except FileNotFoundError:
        return False
