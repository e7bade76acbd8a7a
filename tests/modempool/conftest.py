"""Fixtures shared by the modempool tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

ONE_MODEM_CONFIG = """\
[spool]
path = "pool.db"

[[modem]]
name = "m1"
port = "/dev/null"
"""


@pytest.fixture
def config(tmp_path) -> Path:
    """A config file for one modem `m1` (never opened) and the spool `pool.db` beside it."""
    path = tmp_path / "modempool.toml"
    path.write_text(ONE_MODEM_CONFIG, encoding="utf-8")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def spool_target(request, tmp_path):
    """Where a spool test keeps its spool, once per engine: an SQLite file, or a fresh schema
    of the session's PostgreSQL cluster (its URL)."""
    if request.param == "sqlite":
        return tmp_path / "spool.db"
    return request.getfixturevalue("pg_cluster").new_schema()


@pytest.fixture
def other_spool_target(request, spool_target, tmp_path):
    """A second, empty spool on `spool_target`'s engine (a copy's destination, say)."""
    if str(spool_target).startswith("postgresql"):
        return request.getfixturevalue("pg_cluster").new_schema()
    return tmp_path / "other.db"


@pytest.fixture
def spool_setting(spool_target) -> str:
    """The `[spool]` table's line of a config file for `spool_target`, once per engine: the
    SQLite file's `path`, or the PostgreSQL schema's `url`."""
    key = "url" if str(spool_target).startswith("postgresql") else "path"
    return f'{key} = "{spool_target}"'


@pytest.fixture
def locked_spool(tmp_path):
    """A spool (SQLite, `spool.db`), and a second connection holding its write lock until
    `.rollback()`: the spool's writes meanwhile fail as SpoolUnavailable (past its busy
    timeout), as during a database outage."""
    from modempool.spool import Spool

    path = tmp_path / "spool.db"
    spool = Spool(str(path), busy_timeout=0.1)
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield spool, other
    other.close()
    spool.close()
