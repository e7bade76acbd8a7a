"""History search at scale: the SQLite spool's FTS5 trigram index over message and inbound
text, kept by triggers, and the PostgreSQL spool's pg_trgm GIN indexes, used by
`history.search` (and so by `modempool history search` and the console)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from modempool.operator.history import Query, search
from modempool.spool import Spool
from tests.modempool.daemon_harness import modempool_cli


def test_the_index_finds_chinese_substrings_and_follows_changes(spool_target):
    spool = Spool(spool_target)
    try:
        kept = spool.enqueue("13800138000", "本周五下午三点在三楼开家长会，请准时参加")
        spool.enqueue("13900139000", "Your Parcel 4821 is at the gate")
        spool.enqueue("13900139000", "100% 折扣_特价")
        spool.store_inbound("13800138000", "收到，家长会我会准时到", sim="m1")
        condition, params = spool.text_matches("messages", "家长会")
        if spool.engine.name == "sqlite":
            assert "MATCH" in condition   # answered by the index, not a scan
            assert params == ['"家长会"']
            # two characters are fewer than a trigram: the same answer from a scan
            assert "LIKE" in spool.text_matches("inbound", "收到")[0]
        else:   # a condition the trigram index answers (see the next test)
            assert "ILIKE" in condition and params == ["%家长会%"]
        found = search(spool, Query(text="家长会"))
        assert {(r.direction, r.text) for r in found} == {
            ("out", "本周五下午三点在三楼开家长会，请准时参加"), ("in", "收到，家长会我会准时到")}
        assert [r.text for r in search(spool, Query(text="parcel 48"))] == [
            "Your Parcel 4821 is at the gate"]   # Latin letters match in any case
        assert [r.text for r in search(spool, Query(text="parcel 48", number="13900139000"))] \
            == ["Your Parcel 4821 is at the gate"]   # also among one number's messages
        assert search(spool, Query(text='"; DROP')) == []   # quotes are text
        assert [r.text for r in search(spool, Query(text="0% 折扣_"))] == ["100% 折扣_特价"]
        assert search(spool, Query(text="0%_折")) == []   # % and _ are text, not wildcards
        assert [r.text for r in search(spool, Query(text="收到"))] == [
            "收到，家长会我会准时到"]
        # a batch is indexed once per new row; a repeated idempotency key adds nothing
        spool.enqueue_many([{"to": "13700137000", "text": "期末考试第二次通知", "client_id": "a"},
                            {"to": "13700137001", "text": "期末考试第二次通知", "client_id": "b"}])
        spool.enqueue_many([{"to": "13700137000", "text": "期末考试第二次通知", "client_id": "a"}])
        assert len(search(spool, Query(text="第二次通知"))) == 2
        with spool.transaction() as conn:   # the triggers follow updates and deletes
            conn.execute("UPDATE messages SET text = '毕业典礼改到下周' WHERE id = ?", (kept.id,))
        assert [r.direction for r in search(spool, Query(text="家长会"))] == ["in"]
        assert len(search(spool, Query(text="毕业典礼"))) == 1
    finally:
        spool.close()


def test_an_existing_spool_is_indexed_when_opened(tmp_path):
    path = tmp_path / "old.db"
    Spool(path).close()
    with sqlite3.connect(path) as conn:   # as a spool from before the index had it
        for table in ("messages", "inbound"):
            conn.execute(f"DROP TABLE {table}_fts")
            for trigger in ("insert", "delete", "update"):
                conn.execute(f"DROP TRIGGER IF EXISTS {table}_fts_{trigger}")
        conn.execute("INSERT INTO messages (to_number, text, created_at, updated_at) "
                     "VALUES ('+8613800138000', '旧短信：家长会通知', 'x', 'x')")
    spool = Spool(path)
    try:
        assert "MATCH" in spool.text_matches("messages", "家长会")[0]
        assert [r.text for r in search(spool, Query(text="家长会"))] == [
            "旧短信：家长会通知"]
    finally:
        spool.close()


def test_history_search_command_uses_the_index(tmp_path, spool_target):
    config = tmp_path / "modempool.toml"
    key = "path" if isinstance(spool_target, Path) else "url"
    config.write_text(f'[spool]\n{key} = "{spool_target}"\n', encoding="utf-8")
    spool = Spool(spool_target)
    spool.enqueue("13800138000", "【实验小学】家长会改到周六")
    spool.enqueue("13800138000", "验证码 123456")
    spool.close()
    done = modempool_cli("history", "search", "--text", "家长会", "--json", config=config)
    assert done.returncode == 0, done.stderr
    assert "家长会改到周六" in done.stdout and "验证码" not in done.stdout


def test_a_text_search_before_a_date_starts_at_the_messages_made_before_it(spool_target):
    from datetime import datetime, timedelta, timezone

    spool = Spool(spool_target)
    now = datetime.now(timezone.utc)
    try:
        ids = [spool.enqueue("13800138000", f"家长会通知 {n}").id for n in range(4)]
        made = [now - timedelta(days=10), now - timedelta(days=5), now - timedelta(days=3), now]
        with spool.transaction() as conn:   # as if queued over ten days, in id order
            for message_id, moment in zip(ids, made):
                stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
                conn.execute("UPDATE messages SET created_at = ? WHERE id = ?", (stamp, message_id))
            conn.execute("UPDATE messages SET sent_at = ? WHERE id = ?",
                         (now.strftime("%Y-%m-%dT%H:%M:%S.000Z"), ids[2]))   # sent today
        def found(days: int) -> list[str]:
            query = Query(text="家长会", until=now - timedelta(days=days), direction="out", limit=10)
            return [r.text for r in search(spool, query)]

        assert found(7) == ["家长会通知 0"]
        assert found(1) == ["家长会通知 1", "家长会通知 0"]   # 2 was sent after the date
        assert found(20) == []
    finally:
        spool.close()


def test_postgresql_searches_through_trigram_indexes(pg_cluster, caplog):
    spool = Spool(pg_cluster.new_schema())
    try:
        spool.enqueue("13800138000", "本周五下午三点在三楼开家长会，请准时参加")
        spool.store_inbound("13800138000", "收到，家长会我会准时到", sim="m1")
        with spool.transaction() as conn:   # as on a big spool, where a scan costs more
            conn.execute("SET LOCAL enable_seqscan = off")
            for table in ("messages", "inbound"):
                condition, params = spool.text_matches(table, "家长会")
                plan = "\n".join(r[0] for r in conn.execute(
                    f"EXPLAIN SELECT id FROM {table} WHERE {condition}", params).fetchall())
                assert f"{table}_text_trgm" in plan, plan
                assert "家长会" in conn.execute(
                    f"SELECT text FROM {table} WHERE {condition}", params).fetchone()[0]
    finally:
        spool.close()
    # A database whose characters are classified by the C locale takes no Chinese into its
    # trigrams: the spool still works (searches scan) and says why in the log.
    import psycopg

    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE c_ctype TEMPLATE template0 LC_CTYPE 'C' LC_COLLATE 'C'")
    with Spool(pg_cluster.url(dbname="c_ctype")) as spool:
        spool.enqueue("13800138000", "家长会通知")
        assert [r.text for r in search(spool, Query(text="家长会"))] == ["家长会通知"]
    assert "trigram index cannot see Chinese" in caplog.text and "LC_CTYPE 'C.UTF-8'" in caplog.text
