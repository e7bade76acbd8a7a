"""A consistent copy of the spool database while the daemon keeps running (SQLite online backup).

`backup(source, destination)` copies with `sqlite3.Connection.backup` in one step (`pages=-1`):
in WAL mode that step is a single read transaction, so the copy is one consistent snapshot while
the daemon keeps writing (a copy in several steps would be restarted by SQLite after each write). The copy is written to a temporary file next to the destination, checked with
`PRAGMA integrity_check`, and only then renamed into place. Restoring is described in
docs/operator.md (stop the daemon, copy the backup over the spool file, remove `-wal`/`-shm`).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from modempool.errors import PoolError
from modempool.private_files import create_private


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: str
    bytes: int
    tables: dict[str, int]

    def as_dict(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, "tables": self.tables}

    to_dict = as_dict   # the name every result of `Pool` answers to


def backup(source: str | Path, destination: str | Path, *, pages: int = -1,
           overwrite: bool = False) -> BackupResult:
    """Copy the database at `source` to `destination` consistently; returns row counts per table."""
    source, destination = Path(source), Path(destination)
    if not source.exists():
        raise PoolError(f"no database at {source}")
    if destination.is_dir():
        destination = destination / f"{source.stem}-backup.db"
    if destination.exists() and not overwrite:
        raise PoolError(f"{destination} exists; choose another path or overwrite it")
    if destination.resolve() == source.resolve():
        raise PoolError("the backup cannot overwrite the database itself")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    create_private(partial)   # every SMS, contact, key hash and webhook secret: owner only
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=pages)
            dst.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise PoolError(f"the copy failed its integrity check: {check}")
            tables = {name: dst.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                      for (name,) in dst.execute(
                          "SELECT name FROM sqlite_master WHERE type = 'table'"
                          " AND name NOT LIKE 'sqlite_%' ORDER BY name")}
        finally:
            dst.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    os.replace(partial, destination)
    return BackupResult(str(destination), destination.stat().st_size, tables)
