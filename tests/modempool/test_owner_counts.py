"""Each account's and each campaign's messages by state (a sender's dashboard and `GET
/v1/status`, a campaign's progress) are kept by the database in the writing transaction, on
both engines (schema version 12): after every change a message can go through, they equal a
count of the rows, and reading them reads no message."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import psycopg

from modempool.accounts import record_owner
from modempool.spool import Spool
from modempool.spool.records import SentPart
from modempool.spool.model import to_text, utcnow
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import (act_as_a_daemon, refused_and_left, statements_of,
                                          without_inbound_hooks)


class Owner:
    """What `record_owner` needs of an account."""

    def __init__(self, name: str) -> None:
        self.name = name


SHOP, SCHOOL = Owner("shop"), Owner("school")


def send_as(spool: Spool, owner: Owner | None, to: str, **options) -> int:
    """Enqueue and record the owner in one transaction, as the API does."""
    with spool.transaction():
        message = spool.enqueue(to, "hi", **options)
        if owner is not None:
            record_owner(spool, owner, [message.id], utcnow())
    return message.id


def counted_for(spool: Spool, account: str) -> dict[str, int]:
    return {row["state"]: row["n"] for row in spool.rows(
        "SELECT m.state, count(*) AS n FROM message_accounts o JOIN messages m "
        "ON m.id = o.message_id WHERE o.account = ? GROUP BY m.state", (account,))}


def counted_in(spool: Spool, campaign_id: int) -> dict[str, int]:
    return {row["state"]: row["n"] for row in spool.rows(
        "SELECT state, count(*) AS n FROM messages WHERE campaign_id = ? GROUP BY state",
        (campaign_id,))}


def assert_kept(spool: Spool) -> None:
    for account in ("shop", "school", "nobody"):
        kept = {s: n for s, n in spool.scoped.counts(account).items() if n}
        assert kept == counted_for(spool, account), account
    for campaign_id in (7, 8, 9):
        assert spool.reports.campaign_counts(campaign_id) == counted_in(spool, campaign_id)


def every_change(spool: Spool) -> None:
    """Enqueue, cancel, claim, fail, send, deliver, requeue, ambiguous, retry, expire,
    recovery, a sender's campaign beside an unowned one, deletion."""
    queued = spool.scoped.counts("shop")["queued"], spool.reports.campaign_counts(7).get("queued", 0)
    ids = [send_as(spool, SHOP if i % 3 else SCHOOL, f"1380013800{i}", campaign_id=7 + i % 2)
           for i in range(8)]
    unowned = send_as(spool, None, "13800138099", campaign_id=9)
    assert spool.scoped.counts("shop")["queued"] == queued[0] + 5
    assert spool.reports.campaign_counts(7)["queued"] == queued[1] + 4
    assert_kept(spool)
    first, second, third, fourth, fifth, sixth, seventh, _ = ids
    spool.cancel(first)
    assert spool.claim(second, "m1", "t")
    spool.mark_failed(second, "+CMS ERROR: 500", lease_owner="t")
    assert spool.claim(third, "m2", "t")
    spool.mark_part_writing(third, 1, 1, lease_owner="t")
    spool.mark_many_sent([SentPart(third, 1, None, 7, lease_owner="t")])
    assert spool.store_delivery_report("m2", 7, spool.get(third).to, 0).part_id is not None
    assert spool.get(third).state.value == "delivered"
    assert spool.claim(fourth, "m1", "t")
    spool.requeue(fourth, "+CMS ERROR: 38", lease_owner="t", avoid_sim="m1")
    assert spool.claim(fourth, "m2", "t")
    spool.mark_part_writing(fourth, 1, 1, lease_owner="t")
    spool.mark_ambiguous(fourth, "no answer after the PDU", lease_owner="t")
    assert_kept(spool)
    spool.retry(fourth)
    spool.retry(second)
    with spool.transaction() as conn:
        conn.execute("UPDATE messages SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?",
                     (fifth,))
    assert spool.expire_due() == [fifth]
    assert spool.claim(sixth, "m1", "dead:1/m1")       # a daemon killed: one claimed,
    assert spool.claim(seventh, "m1", "dead:1/m1")     # one with its marker written
    spool.mark_part_writing(seventh, 1, 1, lease_owner="dead:1/m1")
    done = spool.recover_leases(include_live=True)
    assert (list(done.requeued), list(done.ambiguous)) == ([sixth], [seventh])
    assert_kept(spool)
    send_as(spool, SCHOOL, "13800138098", campaign_id=9)   # a campaign started by a sender
    assert spool.scoped.counts("school")["queued"] >= 1 and spool.get(unowned)
    assert_kept(spool)
    with spool.transaction() as conn:                  # a purge: the owner's row, the message
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM parts WHERE message_id = ?", (first,))
        conn.execute("DELETE FROM message_accounts WHERE message_id = ?", (first,))
        conn.execute("DELETE FROM messages WHERE id = ?", (first,))
    assert spool.scoped.counts(SCHOOL.name if first % 3 == 0 else "shop")["cancelled"] == 0
    assert_kept(spool)


def test_kept_counts_per_account_and_campaign_follow_every_change(spool_target):
    with Spool(spool_target) as spool:
        every_change(spool)
        assert spool.scoped.counts("nobody") == dict.fromkeys(spool.scoped.counts("nobody"), 0)
        if spool.engine.name == "postgresql":   # and once the changes are folded
            assert spool.engine.counts.fold()
            assert spool.rows("SELECT count(*) FROM account_state_changes")[0][0] == 0
            assert spool.rows("SELECT count(*) FROM campaign_state_changes")[0][0] == 0
            assert_kept(spool)


def test_a_read_of_an_accounts_or_campaigns_counts_reads_no_message(spool_target):
    with Spool(spool_target) as spool:
        every_change(spool)
        statements = statements_of(
            spool, lambda: (spool.scoped.counts("shop"), spool.reports.campaign_counts(7)))
        assert statements and not [s for s in statements
                                   if "messages " in s or "message_accounts" in s]


def _as_shop_every_other(spool: Spool, i: int, to: str) -> None:
    send_as(spool, SHOP if i % 2 else None, to, campaign_id=7)


def test_concurrent_writers_and_a_senders_campaign_keep_the_counts_right(spool_target):
    """Three writers at once, while a sender's campaign (the same one) queues messages with
    their owner again and again."""
    with Spool(spool_target) as spool:
        errors: list[BaseException] = []
        writers = [threading.Thread(target=act_as_a_daemon,
                                    args=(spool_target, f"m{n}", 30, errors),
                                    kwargs={"enqueue": _as_shop_every_other}) for n in range(3)]
        for writer in writers:
            writer.start()
        started = 0
        while any(w.is_alive() for w in writers) or not started:
            send_as(spool, SCHOOL, f"1390013{started:04d}", campaign_id=7)
            started += 1
            spool.scoped.counts("school"), spool.reports.campaign_counts(7)
        for writer in writers:
            writer.join()
        assert not errors
        assert sum(spool.reports.campaign_counts(7).values()) == 90 + started
        assert sum(spool.scoped.counts("shop").values()) == 45
        assert sum(spool.scoped.counts("school").values()) == started
        assert_kept(spool)


def _filled(target) -> tuple[dict[str, int], dict[str, int]]:
    with Spool(target) as spool:
        every_change(spool)
        return counted_for(spool, "shop"), counted_in(spool, 7)


def test_a_version_11_sqlite_spool_gets_the_counts_at_the_upgrade(tmp_path):
    path = tmp_path / "old.db"
    shop, campaign = _filled(path)
    with sqlite3.connect(path) as conn:   # as version 11 left it
        for table in ("account", "campaign"):
            conn.execute(f"DROP TABLE {table}_state_counts")
        for trigger in ("account_state_counts_owned", "account_state_counts_disowned",
                        "account_state_counts_update", "account_state_counts_delete",
                        "campaign_state_counts_insert", "campaign_state_counts_update",
                        "campaign_state_counts_delete"):
            conn.execute(f"DROP TRIGGER {trigger}")
        without_inbound_hooks(conn)   # step 14
        conn.execute("PRAGMA user_version = 11")
    with Spool(path) as spool:
        assert {s: n for s, n in spool.scoped.counts("shop").items() if n} == shop
        assert spool.reports.campaign_counts(7) == campaign
        assert spool.rows("PRAGMA user_version")[0][0] == SCHEMA_VERSION >= 12
        assert_kept(spool)
        every_change(spool)   # and the triggers count on


def test_a_version_11_sqlite_spool_without_accounts_gets_their_table(tmp_path):
    path = tmp_path / "old.db"
    with Spool(path) as spool:
        spool.enqueue("13800138000", "hi", campaign_id=7)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE account_state_counts")
        conn.execute("DROP TABLE campaign_state_counts")
        conn.execute("DROP TABLE message_accounts")   # its triggers with it
        for trigger in ("account_state_counts_update", "account_state_counts_delete",
                        "campaign_state_counts_insert", "campaign_state_counts_update",
                        "campaign_state_counts_delete"):
            conn.execute(f"DROP TRIGGER {trigger}")
        without_inbound_hooks(conn)   # step 14
        conn.execute("PRAGMA user_version = 11")
    with Spool(path) as spool:
        assert "message_accounts" in spool.table_names()
        assert spool.reports.campaign_counts(7) == {"queued": 1}
        every_change(spool)


def _back_to_version_11(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER account_counts_owned ON message_accounts")
        conn.execute("DROP TRIGGER account_counts_disowned ON message_accounts")
        conn.execute("DROP FUNCTION account_counts_owned()")
        conn.execute("DROP TABLE account_state_changes, account_state_totals, "
                     "campaign_state_changes, campaign_state_totals")
        without_inbound_hooks(conn)   # step 14
        conn.execute("UPDATE modempool_schema SET version = 11")


def test_a_version_11_postgresql_spool_gets_the_counts_at_the_upgrade(pg_cluster):
    url = pg_cluster.new_schema()
    shop, campaign = _filled(url)
    _back_to_version_11(url)
    with Spool(url) as spool:
        assert {s: n for s, n in spool.scoped.counts("shop").items() if n} == shop
        assert spool.reports.campaign_counts(7) == campaign
        assert spool.rows("SELECT version FROM modempool_schema")[0][0] == SCHEMA_VERSION
        assert_kept(spool)


def test_an_sqlite_step_12_that_fails_midway_changes_nothing(tmp_path):
    """Step 12 makes the accounts' counts, then fails making the campaigns' (a view of that
    name here): nothing of it is left, the version stays 11."""
    path = tmp_path / "old.db"
    with Spool(path) as spool:
        send_as(spool, SHOP, "13800138000")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE account_state_counts")
        conn.execute("DROP TABLE campaign_state_counts")
        conn.execute("CREATE VIEW campaign_state_counts AS SELECT 1 AS campaign_id")
        conn.execute("PRAGMA user_version = 11")
    owners = "SELECT account FROM message_accounts"
    assert refused_and_left(path, 11, "account_state_counts", owners) == [("shop",)]


def test_a_postgresql_step_12_that_fails_midway_changes_nothing(pg_cluster):
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        send_as(spool, SHOP, "13800138000")
    _back_to_version_11(url)
    with psycopg.connect(url, autocommit=True) as conn:   # step 12's campaign totals: a view
        conn.execute("CREATE VIEW campaign_state_totals AS SELECT CAST(1 AS bigint) AS campaign_id")
    owners = "SELECT account FROM message_accounts"
    assert refused_and_left(url, 11, "account_state_changes", owners) == [("shop",)]


def test_migrate_carries_the_counts_into_postgresql(tmp_path, pg_cluster):
    from modempool.spool.migrate import migrate

    path = tmp_path / "old.db"
    shop, campaign = _filled(path)
    url = pg_cluster.new_schema()
    assert migrate(path, url).agrees
    with Spool(url) as spool:
        assert {s: n for s, n in spool.scoped.counts("shop").items() if n} == shop
        assert spool.reports.campaign_counts(7) == campaign
        assert "account_state_counts" not in spool.table_names()
        assert_kept(spool)


def test_a_campaigns_send_rate_reads_only_its_recent_sends(spool_target):
    """`campaign_sent_since` (the rate of its progress) walks the campaign's sends of the last
    minutes in `messages_campaign_sent`, not every message of the campaign: the plan of the
    statement it sends to the database, and its answer."""
    with Spool(spool_target) as spool:
        every_change(spool)
        sent = [m for m in spool.list() if m.campaign_id == 7 and m.sent_at is not None]
        assert sent   # the rate has sends to read
        since = min(m.sent_at for m in sent)
        answers = []
        [statement] = statements_of(
            spool, lambda: answers.append(spool.reports.campaign_sent_since(7, since)))
        assert answers == [(len(sent), to_text(since))]
        assert spool.reports.campaign_sent_since(7, since + timedelta(days=1)) == (0, None)
        if spool.engine.name == "sqlite":   # the statement as traced, its values in place
            plan = " ".join(str(row[3]) for row in spool.rows(f"EXPLAIN QUERY PLAN {statement}"))
        else:
            with spool.transaction() as conn:   # as on a big spool, where a scan costs more
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = " ".join(r[0] for r in conn.execute(f"EXPLAIN {statement}",
                                                           (7, to_text(since))))
        assert "messages_campaign_sent" in plan


def test_step_12_waits_for_a_writer_between_its_message_and_its_owner_row(pg_cluster):
    """A rolling upgrade: a writer of the running (version 11) fleet has written a message
    and not yet its owner row when step 12 begins. The step takes `messages`, then
    `message_accounts`, before its indexes (writers' order): the writer finishes, then the
    step runs (its indexes first locked `message_accounts`, and the two deadlocked)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        send_as(spool, SHOP, "13800138000")
        second = spool.enqueue("13800138001", "b").id
    _back_to_version_11(url)
    upgraded: list[dict[str, int]] = []

    def upgrade() -> None:
        with Spool(url) as spool:
            upgraded.append({s: n for s, n in spool.scoped.counts("shop").items() if n})

    with psycopg.connect(url, autocommit=True) as writer:
        with writer.transaction():
            writer.execute("UPDATE messages SET priority = priority WHERE id = %s", (second,))
            upgrading = threading.Thread(target=upgrade)
            upgrading.start()
            deadline = time.monotonic() + 60
            while not writer.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                     "AND locktype = 'relation'").fetchone()[0]:
                assert time.monotonic() < deadline and upgrading.is_alive()
                time.sleep(0.01)   # polling the server's lock table, not waiting for time
            writer.execute("INSERT INTO message_accounts (message_id, account, created_at) "
                           "VALUES (%s, 'shop', '2026-12-06T00:00:00.000Z')", (second,))
        upgrading.join(60)
    assert upgraded == [{"queued": 2}]
