"""The operator hooks (auto-reply, forwarding) on a PostgreSQL role that may not queue messages:
the database's refusal is not the rules' ("the send was refused"). The daemon logs one ERROR
line per hook naming the GRANT, no traceback; nothing is recorded as refused, and the SMS is
kept, so once the GRANT is run the same hooks answer and forward it."""

from __future__ import annotations

import itertools
import logging
import os

import psycopg
import pytest

from modempool.config import load_config
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.spool_lane import INBOUND_THREADS, SpoolLane
from modempool.operator.autoreply import AutoReplies
from modempool.spool import Spool
from modempool.spool.migrate import make_module_tables

_ROLES = itertools.count(1)

CONFIG = """
[spool]
url = {url!r}
[[autoreply]]
keywords = ["营业时间"]
reply = "每天 9:00-18:00"
[forward]
to = ["13900139000"]
"""


def role_without_queueing(pg_cluster) -> tuple[str, str, str]:
    """A spool made whole by its owner and a fresh role with every right but to add messages
    (a GRANT forgotten): (owner's URL, the role's URL, the role's name)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        make_module_tables(spool)
    schema = url.rsplit("search_path%3D", 1)[1]
    role = f"hooks_{os.getpid()}_{next(_ROLES)}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                     f"TO {role}")
        conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
        conn.execute(f"REVOKE INSERT ON {schema}.messages FROM {role}")
    return url, url.replace("postgresql://postgres@", f"postgresql://{role}@"), role


async def test_a_missing_right_is_one_error_line_and_no_refusal(tmp_path, pg_cluster, caplog):
    owner, weak, role = role_without_queueing(pg_cluster)
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.format(url=weak), "utf-8")
    config = load_config(path)
    spool = config.open_spool()
    lane = SpoolLane(threads=INBOUND_THREADS)
    store = InboundStore(spool, config, lane=lane)
    inbound = spool.store_inbound("13800138000", "请问营业时间？", sim="m1")

    with caplog.at_level(logging.INFO, logger="modempool"):
        await store.run_hooks(inbound)
    lines = [record for record in caplog.records if record.levelno >= logging.INFO]
    errors = [record for record in lines if record.levelno >= logging.ERROR]
    assert len(errors) == 2, [record.getMessage() for record in lines]   # auto-reply, forward
    for record in errors:
        assert record.exc_info is None, record.getMessage()   # no traceback
        text = record.getMessage()
        assert "\n" not in text and f"the role '{role}' may not write table messages" in text
        assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES" in text
    assert not [record for record in lines if "refused" in record.getMessage()
                or "no auto-reply" in record.getMessage()]
    # Nothing recorded as a refusal or an answer; the SMS is kept.
    assert spool.db.execute("SELECT count(*) FROM forward_log").fetchone()[0] == 0
    assert AutoReplies(spool.db).log() == []
    assert [m["text"] for m in spool.inbound()] == ["请问营业时间？"]

    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"GRANT INSERT ON ALL TABLES IN SCHEMA {owner.rsplit('%3D', 1)[1]} "
                     f"TO {role}")
    caplog.clear()
    await store.run_hooks(inbound)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert sorted((m.to, m.text) for m in spool.list()) == [
        ("+8613800138000", "每天 9:00-18:00"),
        ("+8613900139000", "[+8613800138000] 请问营业时间？")]
    assert [entry.outcome for entry in AutoReplies(spool.db).log()] == ["replied"]
    await lane.drain()
    lane.close()
    spool.close()


@pytest.mark.parametrize("hook", ["autoreply", "forward"])
def test_each_hook_raises_the_missing_right(tmp_path, pg_cluster, hook):
    """Called alone (a program of its own), a hook lets the database's error out."""
    from modempool.errors import SpoolFailure
    from modempool.operator.autoreply import make_autoreply_handler
    from modempool.operator.forwarding import make_forward_handler

    _, weak, role = role_without_queueing(pg_cluster)
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.format(url=weak), "utf-8")
    config = load_config(path)
    handle = (make_autoreply_handler if hook == "autoreply" else make_forward_handler)(config)
    with config.open_spool() as spool:
        inbound = spool.store_inbound("13800138000", "营业时间", sim="m1")
        with pytest.raises(SpoolFailure, match=f"the role '{role}' may not write table messages"):
            handle(spool, inbound)
