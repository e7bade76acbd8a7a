"""`modempool spool migrate --to postgresql://...`: an SQLite spool copied whole, verified,
and a second run that copies nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timezone

import psycopg
import pytest

from modempool.errors import PoolError
from modempool.spool import MessageState, Spool
from modempool.spool import migrate as migrate_module
from modempool.spool.file_lock import SpoolFileLock
from modempool.spool.migrate import migrate
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, write_config
from tests.modempool.spool_driver import claim_next


def _busy_sqlite_spool(path) -> dict[str, int]:
    """A spool with a message in every interesting state, parts, inbound, a report, a SIM."""
    with Spool(path) as spool:
        ids = spool.enqueue_many([{"to": f"1380013800{i}", "text": f"第{i}条", "client_id": f"c{i}"}
                                  for i in range(6)])
        sent = claim_next(spool, "m1", "h:1/m1", 60)
        spool.mark_part_writing(sent.id, 1, 1, lease_owner="h:1/m1")
        spool.mark_last_part_sent(sent.id, 1, None, 17, lease_owner="h:1/m1")
        spool.store_delivery_report("m1", 17, sent.to, 0, card="8986001")
        failed = claim_next(spool, "m1", "h:1/m1", 60)
        spool.mark_failed(failed.id, "boom", lease_owner="h:1/m1")
        spool.cancel(ids[-1])
        spool.store_inbound("+8613912345678", "你好", sim="m1",
                            received_at=datetime(2026, 3, 1, tzinfo=timezone.utc))
        spool.store_inbound("+8613912345678", "退订", sim="m1", hooks_by="box:7:place-run")
        spool.store_inbound_part("m1", "+8613912345678", 5, 2, 1, "half")
        spool.upsert_sim("m1", iccid="8986001", operator="CMCC")
        return {t: spool.rows(f"SELECT count(*) FROM {t}")[0][0]
                for t in ("messages", "parts", "inbound", "inbound_parts", "delivery_reports",
                          "sims", "events")}


def test_migrate_copies_everything_verifies_and_a_second_run_does_nothing(tmp_path, pg_cluster):
    source = tmp_path / "spool.db"
    counts = _busy_sqlite_spool(source)
    url = pg_cluster.new_schema()
    first = migrate(source, url)
    assert first.agrees
    copied = {t.table: t.copied for t in first.tables}
    assert {t: copied[t] for t in counts} == counts
    second = migrate(source, url)
    assert second.agrees and all(t.copied == 0 for t in second.tables)
    with Spool(source) as old, Spool(url) as new:
        assert [m.to_dict() for m in new.list()] == [m.to_dict() for m in old.list()]
        assert new.counts() == old.counts()   # kept by the target's triggers, copied once
        assert new.metrics.sim_outcomes() == old.metrics.sim_outcomes()
        # the card each report came back to (schema 22)
        assert new.rows("SELECT card FROM delivery_reports")[0][0] == "8986001"
        assert new.counts()["delivered"] == 1 and new.counts()["cancelled"] == 1
        assert new.inbound() == old.inbound()
        assert new.sim("m1")["iccid"] == "8986001"
        assert new.pending_inbound_parts()[0]["text"] == "half"
        # an SMS whose hooks had not run yet: still pending, for the same daemon run
        pending = ("SELECT i.text, h.next_hook, h.owner FROM inbound_hooks h "
                   "JOIN inbound i ON i.id = h.inbound_id")
        assert [tuple(r) for r in new.rows(pending)] == [("退订", 0, "box:7:place-run")]
        # New rows take ids after the copied ones, and the queue goes on where it stopped.
        assert new.enqueue("13800138009", "new").id > max(m.id for m in old.list())
        assert new.get_by_client_id("c0").state is MessageState.DELIVERED
        assert claim_next(new, "m1", "h2:1/m1", 60).id == old.list(state="queued")[0].id


def test_the_outcomes_each_sim_reached_are_the_source_s_and_a_rerun_adds_none(tmp_path,
                                                                              pg_cluster):
    """`modempool_sim_messages_total`: a message sent, then delivered, counts in both; the
    copy counted only the state each message is in."""
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    url = pg_cluster.new_schema()
    with Spool(source) as old:
        reached = old.metrics.sim_outcomes_reached()
    assert reached == {("m1", "sent"): 1, ("m1", "delivered"): 1, ("m1", "failed"): 1}
    for _ in range(2):
        assert migrate(source, url).agrees
        with Spool(url) as new:
            assert new.metrics.sim_outcomes_reached() == reached
            new.engine.counts.fold()
            assert new.metrics.sim_outcomes_reached() == reached


def test_migrate_refuses_a_target_that_is_not_postgresql(tmp_path):
    _busy_sqlite_spool(tmp_path / "spool.db")
    with pytest.raises(PoolError, match="postgresql:// URL"):
        migrate(tmp_path / "spool.db", str(tmp_path / "other.db"))


def _modempool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_the_command_prints_the_counts_and_exits_nonzero_on_an_unreachable_target(
        tmp_path, pg_cluster):
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    url = pg_cluster.new_schema()
    done = _modempool("spool", "migrate", "--db", str(source), "--to", url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["agrees"] and {t["table"]: t["copied"] for t in report["tables"]}["messages"] == 6
    again = _modempool("spool", "migrate", "--db", str(source), "--to", url)
    assert again.returncode == 0 and "messages" in again.stdout and " 0 copied now" in again.stdout
    down = _modempool("spool", "migrate", "--db", str(source), "--to",
                      "postgresql://pool:secret@127.0.0.1:1/sms")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert "127.0.0.1:1" in down.stderr and "refused" in down.stderr.lower()
    assert "secret" not in down.stderr


def _tables_in(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = current_schema()").fetchone()[0]


async def test_migrate_refuses_a_spool_a_daemon_is_running_on(tmp_path, pg_cluster):
    """What the daemon sends during the copy would be queued in the copy: sent twice."""
    url = pg_cluster.new_schema()
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=5) as bank:
        config = write_config(tmp_path / "pool.toml", bank.devices)
        Spool(tmp_path / "spool.db").close()
        daemon = await DaemonProcess(config).start()
        try:
            refused = await asyncio.to_thread(
                _modempool, "spool", "migrate", "--config", str(config), "--to", url)
        finally:
            assert await daemon.stop() == 0
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line == (f"Error: a modempool daemon is running on {tmp_path / 'spool.db'}: stop "
                        "it first (what it sends meanwhile would not be in the copy, and would "
                        "be sent again from it); nothing was copied")
        assert _tables_in(url) == 0
        done = await asyncio.to_thread(
            _modempool, "spool", "migrate", "--config", str(config), "--to", url)
        assert done.returncode == 0, done.stderr


def test_a_daemon_cannot_start_during_a_copy_and_no_lock_file_is_left(tmp_path, pg_cluster,
                                                                     monkeypatch):
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    url = pg_cluster.new_schema()
    daemon_lock = SpoolFileLock(source)
    refusals = []

    def copy_then_a_daemon(*args, **kwargs):   # inside the copy: a daemon starting now
        try:
            daemon_lock.take("refused")
        except PoolError as exc:
            refusals.append(str(exc))
        return copy(*args, **kwargs)

    copy = migrate_module._migrate
    monkeypatch.setattr(migrate_module, "_migrate", copy_then_a_daemon)
    assert migrate(source, url).agrees
    assert refusals == ["refused"]
    assert not (tmp_path / "spool.db.lock").exists()   # the copy made it, and took it away


def test_migrate_copies_accounts_webhooks_their_outbox_and_the_operator_tables(tmp_path, pg_cluster):
    from datetime import timedelta

    from modempool.accounts import Accounts
    from modempool.operator.contacts import AddressBook
    from modempool.sessions import Sessions
    from modempool.webhooks import Webhooks

    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    with Spool(source) as spool:
        account, key = Accounts(spool).add("shop", "sender", sims=["m1"], per_day=100)
        Sessions(spool).set_password("shop", "long enough secret")
        hooks = Webhooks(spool)
        webhook, secret = hooks.add("http://127.0.0.1:9/hook", ["sms.received", "optout.added"])
        spool.store_inbound("+8613912345679", "退订", sim="m1")     # an event, pending
        [queued] = spool.enqueue_many([{"to": "13800138007", "text": "告警"}])
        with spool.transaction() as conn:
            hooks.add_dlr(conn, [queued], "http://127.0.0.1:9/dlr?s=%d", 1)
        [due] = hooks.claim_due(timedelta(seconds=60), per_endpoint=5, busy=[])
        hooks.delivered(due["id"], 204)
        spool.store_inbound("+8613912345670", "好的", sim="m1")     # another, still pending
        book = AddressBook(spool.db)
        book.upsert("13812345678", "王芳", groups=["家长"])
        tables = ("accounts", "message_accounts", "account_passwords", "webhooks",
                  "webhook_outbox", "kannel_dlr", "contacts", "groups", "group_members")
        counts = {t: spool.rows(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    assert counts["webhook_outbox"] == 2 and counts["group_members"] == 1

    url = pg_cluster.new_schema()
    first = migrate(source, url)
    assert first.agrees, first.to_dict()
    assert {t.table: t.copied for t in first.tables if t.table in tables} == counts
    assert not [t for t in first.skipped if "fts" in t or "counts" in t or "latency" in t]
    second = migrate(source, url)
    assert second.agrees and all(t.copied == 0 for t in second.tables)
    with Spool(url) as new:
        assert Accounts(new).authenticate(key).name == "shop"      # the key works there
        assert Sessions(new).check("shop", "long enough secret").name == "shop"
        assert Webhooks(new).secrets() == {webhook.id: secret}
        # the copied inbound rows made no new events: the outbox is the source's
        outbox = new.rows("SELECT type, state FROM webhook_outbox ORDER BY id")
        assert [tuple(r) for r in outbox] == [("sms.received", "delivered"),
                                              ("sms.received", "pending")]
        new.store_inbound("+8613912345671", "在吗", sim="m1")     # the triggers work there
        assert len(new.rows("SELECT 1 FROM webhook_outbox")) == 3
        assert [c.name for c in AddressBook(new.db).list(group="家长")] == ["王芳"]


def test_a_table_no_module_list_knows_is_made_and_copied_too(tmp_path, pg_cluster):
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    with Spool(source) as spool, spool.transaction() as conn:   # as a newer module would
        conn.execute("CREATE TABLE IF NOT EXISTS birthdays (\n    id INTEGER PRIMARY KEY,\n"
                     "    number TEXT NOT NULL, -- whose; E.164\n    day TEXT NOT NULL\n)")
        conn.execute("CREATE INDEX IF NOT EXISTS birthdays_by_day ON birthdays (day)")
        conn.executemany("INSERT INTO birthdays (number, day) VALUES (?, ?)",
                         [("+8613800138000", "03-01"), ("+8613800138001", "12-24")])
    url = pg_cluster.new_schema()
    result = migrate(source, url)
    assert result.agrees and "birthdays" not in result.skipped
    assert {t.table: t.copied for t in result.tables}["birthdays"] == 2
    with Spool(url) as new:
        assert [r[0] for r in new.rows("SELECT day FROM birthdays ORDER BY id")] == ["03-01", "12-24"]
        assert new.rows("SELECT 1 FROM pg_indexes WHERE indexname = 'birthdays_by_day'")


def test_messages_go_in_by_the_batch_and_the_counts_are_kept_once_a_batch(tmp_path, pg_cluster):
    """The kept counts' statement trigger fires once per statement: the copy inserts a batch
    in one, so a million messages do not leave a million count rows."""
    source = tmp_path / "spool.db"
    with Spool(source) as spool:
        spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(120))
    url = pg_cluster.new_schema()
    result = migrate(source, url, batch=50)
    assert result.agrees
    with Spool(url) as new:
        assert new.counts()["queued"] == 120
        assert new.rows("SELECT count(*) FROM message_counts")[0][0] == 3   # 50 + 50 + 20


def test_a_source_table_whose_name_is_not_a_plain_word_is_skipped_not_run(tmp_path, pg_cluster):
    """Names read from the source file go into the copy's statements: only plain words do
    (a quoted name PostgreSQL would take as well is reported as skipped)."""
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    with Spool(source) as spool, spool.transaction() as conn:
        conn.execute('CREATE TABLE "old notes" (id INTEGER PRIMARY KEY, "the body" TEXT)')
        conn.execute('INSERT INTO "old notes" ("the body") VALUES (\'x\')')
    url = pg_cluster.new_schema()
    result = migrate(source, url)
    assert result.agrees and "old notes" in result.skipped
    with Spool(url) as new:
        assert new.rows("SELECT count(*) FROM messages")[0][0] > 0


def test_columns_of_any_name_are_copied(tmp_path, pg_cluster):
    """A table no module list knows, made on the target from its SQLite definition: a Chinese
    column name, one with a space, one PostgreSQL folds to lower case, all copied."""
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    with Spool(source) as spool, spool.transaction() as conn:
        conn.execute('CREATE TABLE visit_notes (id INTEGER PRIMARY KEY, 备注 TEXT, '
                     '"the body" TEXT, Place TEXT)')
        conn.execute('INSERT INTO visit_notes (备注, "the body", Place) VALUES (?, ?, ?)',
                     ("周五回访", "带上合同", "北京"))
    url = pg_cluster.new_schema()
    result = migrate(source, url)
    assert result.agrees and {t.table: t.copied for t in result.tables}["visit_notes"] == 1
    with Spool(url) as new:
        assert tuple(new.rows('SELECT 备注, "the body", place FROM visit_notes')[0]) == \
            ("周五回访", "带上合同", "北京")


def test_a_column_the_target_has_no_place_for_is_an_error_naming_it(tmp_path, pg_cluster):
    """An operator's own column in a module's table (the target's table is the module's):
    refused by name, and nothing copied, rather than left behind with the counts agreeing."""
    source = tmp_path / "spool.db"
    _busy_sqlite_spool(source)
    with Spool(source) as spool:
        from modempool.operator.contacts import AddressBook

        AddressBook(spool.db).upsert("13900000001", "张三")
        with spool.transaction() as conn:
            conn.execute("ALTER TABLE contacts ADD COLUMN 备注 TEXT")
            conn.execute("ALTER TABLE contacts ADD COLUMN region TEXT")
            conn.execute("UPDATE contacts SET 备注 = '老客户', region = '华北'")
    url = pg_cluster.new_schema()
    with pytest.raises(PoolError) as refused:
        migrate(source, url)
    assert "contacts.备注, contacts.region" in str(refused.value)
    assert "nothing was copied" in str(refused.value)
    with Spool(url) as new:
        assert new.rows("SELECT count(*) FROM messages")[0][0] == 0
        assert new.rows("SELECT count(*) FROM contacts")[0][0] == 0


def test_a_rerun_reports_each_source_row_the_target_holds_otherwise(tmp_path, pg_cluster):
    """The target moved on after the first run (a message sent there took id 4, and message 1
    was edited), and the SQLite spool queued its own id 4: the counts agree, the content does
    not. Each such row is a conflict named by table and key, and the command fails."""
    source, url = tmp_path / "spool.db", pg_cluster.new_schema()
    with Spool(source) as spool:
        spool.enqueue_many([{"to": f"1380013800{i}", "text": f"old {i}"} for i in range(3)])
    assert migrate(source, url).agrees
    with Spool(url) as target:
        assert target.enqueue("13800138009", "sent from PostgreSQL").id == 4
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE messages SET text = 'edited there' WHERE id = 1")
    with Spool(source) as spool:
        assert spool.enqueue("13800138008", "queued on SQLite after the move").id == 4
    again = migrate(source, url)
    messages = next(t for t in again.tables if t.table == "messages")
    assert (messages.source, messages.copied, messages.target) == (4, 0, 4)   # counts agree
    assert not again.agrees and messages.conflicts == 2 and messages.keys == ("id=1", "id=4")
    assert all(t.agrees for t in again.tables if t.table != "messages")
    done = _modempool("spool", "migrate", "--db", str(source), "--to", url)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "2 CONFLICTS" in done.stdout and "id=1, id=4" in done.stdout
    assert done.stderr.startswith("Error: 2 rows of the source are not in the target")
    with Spool(url) as target:   # nothing overwritten
        assert sorted(m.text for m in target.list()) == [
            "edited there", "old 1", "old 2", "sent from PostgreSQL"]
