"""A PostgreSQL role that may read the spool but not write it: every command and the daemon
fail with one line that names the role, the object and the GRANT that is missing, never a
traceback, and nothing is lost (issue 18, "a missing permission gets a clear message")."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import psycopg
import pytest

from modempool import Pool
from modempool.spool import Spool
from modempool.spool.database_errors import SpoolForbidden
from modempool.spool.migrate import make_module_tables

_ROLES = itertools.count(1)


def _read_only_role(pg_cluster) -> tuple[str, str, str]:
    """A spool made whole by its owner, one message in it, and a fresh role that may only
    read it: (owner's URL, the role's URL, the role's name)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        make_module_tables(spool)
        spool.enqueue("13800138000", "queued by the owner")
    schema = url.rsplit("search_path%3D", 1)[1]
    role = f"reader_{os.getpid()}_{next(_ROLES)}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    return url, url.replace("postgresql://postgres@", f"postgresql://{role}@"), role


def _modempool(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_the_library_raises_one_error_naming_role_object_and_grant(pg_cluster):
    _, weak, role = _read_only_role(pg_cluster)
    with Spool(weak) as spool:
        assert [m.text for m in spool.list()] == ["queued by the owner"]   # reading works
        with pytest.raises(SpoolForbidden) as refused:
            spool.enqueue("13800138001", "not allowed")
        with pytest.raises(SpoolForbidden) as cancel:
            spool.cancel(spool.list()[0].id)
    assert refused.value.role == role and refused.value.kind in ("sequence", "table")
    assert cancel.value.kind == "table" and cancel.value.name == "messages"
    assert str(cancel.value).startswith(f"the role '{role}' may not write table messages: "
                                        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES")
    with Spool(weak) as spool:
        assert [m.text for m in spool.list()] == ["queued by the owner"]   # nothing lost


def test_a_role_that_may_only_read_reads_a_message_by_id(tmp_path, pg_cluster):
    """`Pool.get` and `Pool.wait` read; they took a row lock, which a SELECT-only role may not
    (docs/scale-out.md, "Roles and rights")."""
    _, weak, _ = _read_only_role(pg_cluster)
    config = tmp_path / "pool.toml"
    config.write_text(f'[spool]\nurl = "{weak}"\n', encoding="utf-8")
    with Pool.open(config, create=False) as pool:
        [queued] = pool.messages()
        assert pool.get(queued.id).text == "queued by the owner"
        waited = pool.wait([queued.id], timeout=0)
        assert waited.timed_out and [m.id for m in waited.messages] == [queued.id]


def test_every_command_and_the_daemon_fail_with_one_line(tmp_path, pg_cluster):
    owner, weak, role = _read_only_role(pg_cluster)
    config = tmp_path / "pool.toml"
    config.write_text(f'[spool]\nurl = "{weak}"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n',
                      encoding="utf-8")
    status = _modempool("status", "--config", str(config), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    source = tmp_path / "old.db"
    Spool(source).close()
    for command in (["send", "13800138001", "hi", "--config", str(config)],
                    ["cancel", "1", "--config", str(config)],
                    ["contacts", "add", "13800138001", "--name", "Bob", "--config", str(config)],
                    ["run", "--config", str(config)],
                    ["spool", "migrate", "--db", str(source), "--to", weak]):
        done = _modempool(*command, cwd=tmp_path)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        [line] = [line for line in done.stderr.splitlines() if line.strip()]
        assert line.startswith(f"Error: the role '{role}' may not "), (command, line)
        assert " GRANT " in line and "docs/scale-out.md" in line, (command, line)
    with Spool(owner) as spool:
        assert [m.text for m in spool.list()] == ["queued by the owner"]


@pytest.mark.parametrize(("sql", "verb"), [
    ("SELECT updated_at FROM messages", "read"),
    ("WITH due AS (SELECT id, updated_at FROM messages) SELECT * FROM due", "read"),
    ("WITH part AS (UPDATE parts SET state = 'sent' WHERE id = 1 RETURNING sim) SELECT 1",
     "write"),
    ("WITH logged AS (INSERT INTO events (kind) VALUES ('sent')) SELECT 1", "write"),
    ("SELECT 1 FROM messages WHERE id = 1 FOR UPDATE", "write"),
    ("UPDATE messages SET held = 1", "write"),
])
def test_a_statement_is_named_a_read_or_a_write(sql, verb):
    """The GRANT line says "may not write" for a statement whose CTEs write (the record and
    the next marker in one statement), not "may not read" for its leading WITH."""
    from modempool.spool.database_errors import _verb

    assert _verb(sql) == verb
