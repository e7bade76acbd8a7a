"""A spool written by a newer modempool, refused by `send` and `run` on either engine in the
same words, and left as it was: no lock file beside an SQLite one (issue 18)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from modempool.spool import Spool
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.daemon_harness import modempool_cli

NEWER = SCHEMA_VERSION + 1


def _refusal(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    return line


@pytest.fixture(params=["sqlite", "postgresql"])
def newer_spool(request, tmp_path):
    """A config whose spool has schema version NEWER, and what the spool is called."""
    if request.param == "sqlite":
        path = tmp_path / "new.db"
        Spool(path).close()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA user_version = {NEWER}")
        conn.close()
        spool = f'path = "{path}"'
    else:
        url = request.getfixturevalue("pg_cluster").new_schema()
        Spool(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE modempool_schema SET version = %s", (NEWER,))
        spool = f'url = "{url}"'
    config = tmp_path / "c.toml"
    config.write_text(f"[spool]\n{spool}\n\n[simulator]\nmodems = 1\n", encoding="utf-8")
    return config


def test_send_and_run_refuse_a_newer_spool_in_the_same_words(newer_spool, tmp_path):
    sent = _refusal(modempool_cli("send", "+8613800138000", "hello", config=newer_spool))
    ran = _refusal(modempool_cli("run", config=newer_spool))
    for line in (sent, ran):
        assert line.startswith("Error: the spool "), line
        assert line.endswith(f"has schema version {NEWER}, newer than this modempool "
                             f"understands ({SCHEMA_VERSION}): upgrade modempool; the spool "
                             "was left untouched"), line
    assert sent == ran
    assert sorted(p.name for p in tmp_path.iterdir() if "lock" in p.name) == []
