"""The queue by state (dashboard, status) from counts the SQLite spool keeps by trigger: they
always equal a count of the rows."""

from __future__ import annotations

import sqlite3

from modempool.spool import Spool


def counted(spool: Spool) -> dict[str, int]:
    out = {state: 0 for state in spool.counts()}
    for row in spool.rows("SELECT state, count(*) AS n FROM messages GROUP BY state"):
        out[row["state"]] = row["n"]
    return out


def test_kept_counts_follow_every_change(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    try:
        first, second, third = (spool.enqueue(f"1380013800{i}", "hi") for i in range(3))
        spool.enqueue_many([{"to": "13800138009", "text": "x", "client_id": "k"}] * 2)  # one row
        assert spool.counts()["queued"] == 4 and spool.counts() == counted(spool)
        spool.cancel(first.id)
        assert spool.claim(second.id, "m1", "t")
        spool.mark_failed(second.id, "+CMS ERROR: 500", lease_owner="t")
        assert spool.counts() == counted(spool)
        assert (spool.counts()["cancelled"], spool.counts()["failed"]) == (1, 1)
        with spool.transaction() as conn:
            conn.execute("DELETE FROM messages WHERE id = ?", (third.id,))
        assert spool.counts() == counted(spool) and spool.counts()["queued"] == 1
    finally:
        spool.close()


def test_an_existing_spool_gets_its_counts_when_opened(tmp_path):
    path = tmp_path / "old.db"
    spool = Spool(path)
    spool.enqueue("13800138000", "a")
    spool.enqueue("13800138001", "b")
    spool.close()
    with sqlite3.connect(path) as conn:   # as made before the counts were kept
        conn.execute("DROP TABLE message_state_counts")
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER message_state_counts_{trigger}")
    spool = Spool(path)
    try:
        assert spool.counts()["queued"] == 2 and spool.counts() == counted(spool)
    finally:
        spool.close()


def test_a_sims_uncertain_parts_are_counted_from_an_index(spool_target):
    """`sent_counts` (status, dashboard, quotas) must not read every part a SIM ever sent."""
    spool = Spool(spool_target)
    query = ("SELECT count(*) FROM parts WHERE sim = ? AND state IN ('writing', 'ambiguous') "
             "AND writing_at >= ? AND writing_at <= ?")
    try:
        if spool.engine.name == "sqlite":
            plan = " ".join(str(row[3]) for row in spool.rows(f"EXPLAIN QUERY PLAN {query}",
                                                              ("m1", "a", "b")))
        else:
            with spool.transaction() as conn:   # as on a big spool, where a scan costs more
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = " ".join(r[0] for r in conn.execute(f"EXPLAIN {query}", ("m1", "a", "b")))
        assert "parts_uncertain" in plan
        assert spool.sent_counts("m1") == (0, 0, 0)
    finally:
        spool.close()
