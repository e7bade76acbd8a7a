"""The forward log is indexed by the SMS alone (rev20b L6): its first index named each row's
whole command line too, and on PostgreSQL a command longer than a btree row (about 2.7 KB)
made every insert into `forward_log` fail ("index row size exceeds btree maximum"). Schema
step 19 drops that index where a spool has it. Both engines."""

from __future__ import annotations

import os

from modempool.operator.db import ensure_schema
from modempool.operator.forwarding import SCHEMA, _attempts_made, record_attempt
from modempool.spool import Spool
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import schema_version, set_schema_version


def _indexes(spool: Spool) -> set[str]:
    if spool.engine.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'forward_log'"
    else:
        sql = ("SELECT indexname FROM pg_indexes WHERE tablename = 'forward_log' "
               "AND schemaname = current_schema()")
    return {row[0] for row in spool.rows(sql)}


def test_a_command_line_longer_than_a_btree_row_has_its_attempts_logged(spool_target):
    command = "notify --token " + os.urandom(4000).hex()   # 8 KB that no compression shrinks
    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        record_attempt(spool, 7, command, 1, "failed", "exit status 1")
        record_attempt(spool, 7, command, 2, "failed", "exit status 1")
        assert _attempts_made(spool, 7, command) == 2
        assert _attempts_made(spool, 7, "another command") == 0


def test_a_version_18_spool_loses_the_index_on_the_command_line(spool_target):
    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        with spool.engine.tx() as conn:   # as version 18 made it
            conn.execute("CREATE INDEX forward_log_by_inbound ON forward_log (inbound_id, target)")
            set_schema_version(spool, conn, 18)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 19
        assert "forward_log_by_inbound" not in _indexes(spool)
        ensure_schema(spool.db, SCHEMA)
        assert "forward_log_of_inbound" in _indexes(spool)
