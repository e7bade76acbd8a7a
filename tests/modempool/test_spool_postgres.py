"""What only the PostgreSQL engine does: reachability errors, row locks, NOTIFY, versions."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from modempool.spool import Spool, SpoolTooNew, SpoolUnreachable
from benchmarks.bench_upgrade import AS_VERSION_9   # version 10's counts in version 9's shape
from modempool.spool.model import MessageState
from modempool.spool.postgres_counts import _FOLD_LOCK
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import claim_next, without_inbound_hooks


def test_an_unreachable_database_names_the_host_and_the_reason():
    with pytest.raises(SpoolUnreachable) as failure:
        Spool("postgresql://pool:secret@127.0.0.1:1/sms")
    text = str(failure.value)
    assert "postgresql://pool@127.0.0.1:1/sms" in text and "secret" not in text
    assert "refused" in text.lower()


def test_a_missing_database_is_named(pg_cluster):
    with pytest.raises(SpoolUnreachable, match=' refused the connection: .*database "nosuchdb" '
                       'does not exist'):
        Spool(pg_cluster.url(dbname="nosuchdb"))


def test_an_unknown_role_is_one_line_saying_the_server_refused_it(pg_cluster, tmp_path):
    """The server answered and refused the role: said so, not that it cannot be reached."""
    import subprocess
    import sys

    url = pg_cluster.new_schema().replace("postgresql://postgres@", "postgresql://nosuchrole@")
    config = tmp_path / "pool.toml"
    config.write_text(f'[spool]\nurl = "{url}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cli", "status", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and not done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: the spool at postgresql://nosuchrole@") and (
        ' refused the connection: ' in line and line.endswith('role "nosuchrole" does not exist'))


#: What a newer spool is made of, read before and after an older modempool met it: its
#: functions, indexes, triggers, columns (their text), its rows, its version.
CATALOGUE = [
    "SELECT md5(string_agg(proname || prosrc, ',' ORDER BY proname)) FROM pg_proc "
    "WHERE pronamespace = current_schema()::regnamespace",
    "SELECT md5(string_agg(indexname || indexdef, ',' ORDER BY indexname)) FROM pg_indexes "
    "WHERE schemaname = current_schema()",
    "SELECT md5(string_agg(tgname || pg_get_triggerdef(t.oid), ',' ORDER BY tgname)) "
    "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace",
    "SELECT md5(string_agg(table_name || column_name || data_type || coalesce(column_default, ''), "
    "',' ORDER BY table_name, column_name)) FROM information_schema.columns "
    "WHERE table_schema = current_schema()",
    "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM events), "
    "(SELECT count(*) FROM daemons), (SELECT md5(string_agg(m::text, ',' ORDER BY id)) "
    "FROM messages m)",
    "SELECT version FROM modempool_schema",
]


def catalogue(url: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [conn.execute(query).fetchone() for query in CATALOGUE]


def test_a_newer_schema_is_refused_and_left_untouched(pg_cluster):
    """An older modempool meeting a newer spool changes nothing of it, not even what it would
    "repair" at open in a spool of its own version (an index it makes, a function it writes)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        spool.enqueue("13800138000", "kept")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE modempool_schema SET version = %s", (SCHEMA_VERSION + 1,))
        conn.execute("DROP INDEX parts_uncertain")   # made at open when missing
        conn.execute("CREATE OR REPLACE FUNCTION message_counts_follow() RETURNS trigger "
                     "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
    before = catalogue(url)
    with pytest.raises(SpoolTooNew, match="upgrade modempool"):
        Spool(url)
    assert catalogue(url) == before and before[-1] == (SCHEMA_VERSION + 1,)


def test_a_claim_skips_a_row_another_host_holds_instead_of_waiting(pg_cluster):
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        first, second = spool.enqueue_many([{"to": "13800138000", "text": "a"},
                                            {"to": "13800138001", "text": "b"}])
        with psycopg.connect(url) as other:  # another daemon, mid-transaction on `first`
            other.execute("SELECT id FROM messages WHERE id = %s FOR UPDATE", (first,))
            claimed = claim_next(spool, "m1", "host-b:1/m1", 60)
            assert claimed.id == second
            other.rollback()
        assert claim_next(spool, "m1", "host-b:1/m1", 60).id == first


def test_an_enqueue_on_one_host_wakes_a_dispatcher_waiting_on_another(pg_cluster):
    url = pg_cluster.new_schema()
    with Spool(url) as idle, Spool(url) as sender:
        assert idle.engine.wait_for_enqueue(0.05) is False  # nothing queued: times out
        woke: list[bool] = []
        waiting = threading.Thread(target=lambda: woke.append(idle.engine.wait_for_enqueue(30)))
        waiting.start()
        sender.enqueue("13800138000", "你好")
        waiting.join(timeout=30)
        assert woke == [True]


def test_daemons_starting_together_on_a_new_database_create_it_once(pg_cluster):
    """CREATE ... IF NOT EXISTS is not safe in parallel: schema changes take a lock."""
    url = pg_cluster.new_schema()
    errors: list[str] = []

    def start() -> None:
        from modempool.operator.optout import send_time_check

        try:
            with Spool(url) as spool:
                send_time_check(spool.db)  # the operator tables too, as a starting daemon does
        except Exception as exc:  # noqa: BLE001 - the test reports whatever it was
            errors.append(repr(exc))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM modempool_schema").fetchall() == [(SCHEMA_VERSION,)]


def test_a_role_without_permission_gets_a_clear_message(pg_cluster):
    url = pg_cluster.new_schema()
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS weak")
        conn.execute("CREATE ROLE weak LOGIN")
        schema = url.rsplit("search_path%3D", 1)[1]
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO weak")  # may look, may not create
    weak = url.replace("postgresql://postgres@", "postgresql://weak@")
    with pytest.raises(SpoolUnreachable, match="cannot prepare the spool at .*permission denied: "
                       f"the role 'weak' may not use or create tables in schema {schema}: "
                       f"GRANT USAGE, CREATE ON SCHEMA {schema} TO weak"):
        Spool(weak)


def test_the_daemon_and_commands_say_which_database_is_unreachable_and_exit_nonzero(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "pool.toml"
    config.write_text('[spool]\nurl = "postgresql://pool:secret@127.0.0.1:1/sms"\n\n'
                      '[[modem]]\nname = "m1"\nport = "/dev/null"\n', encoding="utf-8")
    for command in (["run"], ["status"], ["send", "13800138000", "你好"]):
        done = subprocess.run([sys.executable, "-m", "cli", *command, "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr
        assert "postgresql://pool@127.0.0.1:1/sms" in done.stderr and "refused" in done.stderr
        assert "secret" not in done.stderr


def test_an_enqueue_leaves_its_message_unlocked_for_the_dispatcher_it_wakes(pg_cluster):
    """The enqueue reads its new message back after the commit that sends the NOTIFY. A read
    that locked the row (FOR UPDATE, for the length of its statement) made a woken dispatcher's
    round (SKIP LOCKED) that ran at that instant pass the message over: it waited for the next
    poll. That instant cannot be aimed at, but a row lock leaves its mark: the locking
    transaction's id in the row's xmax, 0 on a row nobody has locked or changed. Reads by id
    (the enqueue's, `get`) lock nothing; the round finds the message."""
    url = pg_cluster.new_schema()
    with Spool(url) as sender, Spool(url) as dispatcher:
        assert dispatcher.engine.wait_for_enqueue(0.05) is False   # listening, nothing queued
        message = sender.enqueue("13800138000", "wake up")
        assert dispatcher.engine.wait_for_enqueue(30) is True
        assert sender.get(message.id).state is MessageState.QUEUED
        with psycopg.connect(url, autocommit=True) as conn:
            locker = conn.execute("SELECT xmax::text FROM messages WHERE id = %s",
                                  (message.id,)).fetchone()[0]
        assert locker == "0"
        with dispatcher.batch():
            assert [m.id for m in dispatcher.dispatchable(lock=True)] == [message.id]


def test_a_dispatch_round_skips_the_messages_another_daemons_round_holds(pg_cluster):
    """Two daemons reading the head of the queue at once: the second round takes the next
    messages instead of waiting for (and then losing) the first round's."""
    url = pg_cluster.new_schema()
    with Spool(url) as first, Spool(url) as second:
        ids = list(first.enqueue_many(
            {"to": "+8613800138000", "text": f"m{i}"} for i in range(6)))
        held = threading.Event()
        done = threading.Event()
        seen: list[int] = []

        def round_of_the_first() -> None:
            with first.batch():
                seen.extend(m.id for m in first.dispatchable(limit=3, lock=True))
                held.set()
                done.wait(timeout=30)

        thread = threading.Thread(target=round_of_the_first)
        thread.start()
        try:
            assert held.wait(timeout=30)
            with second.batch():
                others = [m.id for m in second.dispatchable(limit=3, lock=True)]
                claimed = [second.claim(i, "b1", "b:1/b1", 60) for i in others]
        finally:
            done.set()
            thread.join()
    assert seen == ids[:3] and others == ids[3:]
    assert all(message is not None for message in claimed)


SEND_PATH = {   # the statements of a message's way out that look it up, and the queue's walk
    "claim round": "SELECT * FROM messages WHERE state = 'queued' AND held = 0 AND "
                   "(not_before IS NULL OR not_before <= 'x') ORDER BY priority DESC, id LIMIT 24",
    "claim": "UPDATE messages SET state = 'sending' WHERE id = 1 AND state = 'queued' AND held = 0",
    "marker": "UPDATE messages SET parts_total = 1 WHERE id = 1 AND state = 'sending' "
              "AND lease_owner = 'h:1/m1'",
    "sent": "UPDATE messages SET state = 'sent' WHERE id = 1 AND state = 'sending' "
            "AND lease_owner = 'h:1/m1'",
}


def send_path_plans(spool) -> dict[str, str]:
    with spool.transaction() as conn:   # as on a big spool, where a scan costs more
        conn.execute("SET LOCAL enable_seqscan = off")
        return {step: " ".join(r[0] for r in conn.execute("EXPLAIN " + sql))
                for step, sql in SEND_PATH.items()}


def assert_each_lookup_has_its_index(plans: dict[str, str]) -> None:
    assert "messages_queue" in plans["claim round"] and "Sort" not in plans["claim round"]
    for step in ("claim", "marker", "sent"):   # one id: never a walk of a state's entries
        assert "messages_queue" not in plans[step] and "messages_claim" not in plans[step]
        assert "id = 1" in plans[step].replace("(", "").replace(")", "")


def test_each_lookup_of_the_send_path_has_an_index_that_answers_it(pg_cluster):
    with Spool(pg_cluster.new_schema()) as spool:
        spool.enqueue("13800138000", "hi")
        assert_each_lookup_has_its_index(send_path_plans(spool))
        options = spool.rows("SELECT reloptions FROM pg_class WHERE relname = 'messages' "
                             "AND relnamespace = CAST(current_schema() AS regnamespace)")[0][0]
        assert "autovacuum_vacuum_scale_factor=0" in options


def test_a_version_8_spool_gets_the_queue_indexes_at_the_upgrade(pg_cluster):
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        spool.enqueue("13800138000", "hi")
    with psycopg.connect(url, autocommit=True) as conn:   # as version 8 left it
        conn.execute("DROP INDEX messages_queue, messages_state")
        conn.execute("CREATE INDEX messages_claim ON messages (state, held, priority DESC, id)")
        conn.execute("ALTER TABLE messages RESET (autovacuum_vacuum_scale_factor)")
        without_inbound_hooks(conn)   # step 14
        conn.execute("UPDATE modempool_schema SET version = 8")
    with Spool(url) as spool:
        assert_each_lookup_has_its_index(send_path_plans(spool))
        assert spool.counts()["queued"] == 1
        assert spool.rows("SELECT version FROM modempool_schema")[0][0] == SCHEMA_VERSION


def test_a_module_opening_existing_tables_does_not_wait_for_their_writers(pg_cluster):
    """Tables and indexes that exist are not made again: `CREATE INDEX IF NOT EXISTS` would
    wait for a transaction writing the table (here it would time out), and inside an open
    transaction it would run there, without the schema lock."""
    from datetime import datetime, timezone
    from urllib.parse import quote

    from modempool.operator.autoreply import AutoReplies

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        AutoReplies(spool.db)   # the tables and their index, made once
    with psycopg.connect(url) as writer:
        writer.execute("INSERT INTO autoreply_log (sender, rule, outcome, created_at) "
                       "VALUES ('+8613800138000', 'r', 'replied', '2026-12-06T10:00:00.000Z')")
        # another daemon's spool: a lock it cannot have at once is an error, not a wait
        with Spool(url + quote(" -clock_timeout=200")) as spool:
            with spool.db.transaction():
                AutoReplies(spool.db).record("+8613900139000", "r", None, None, "cooldown",
                                             datetime.now(timezone.utc))
        writer.rollback()
    with Spool(url) as spool:
        assert [e.sender for e in AutoReplies(spool.db).log()] == ["+8613900139000"]



def test_a_read_that_cannot_fold_the_counts_still_answers(pg_cluster, caplog):
    """A read of the kept counts folds them when it summed many rows; where it may not write
    (a read-only role or transaction, a standby) it answers with what it summed."""
    from urllib.parse import quote

    from modempool.spool.postgres_counts import FOLD_AFTER_ROWS

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        spool.enqueue("+8613800138000", "one")
        # the counts' rows as many daemons' changes leave them, unfolded
        with spool.engine.tx() as conn:
            conn.execute("INSERT INTO message_counts (state, sim, n) SELECT 'queued', NULL, 0 "
                         "FROM generate_series(1, ?)", (FOLD_AFTER_ROWS,))
    with Spool(url + quote(" -cdefault_transaction_read_only=on")) as spool:
        assert spool.counts()["queued"] == 1
    assert "not folded" in caplog.text
    with Spool(url) as spool:
        assert spool.counts()["queued"] == 1   # and a writer folds them into the totals
        assert spool.rows("SELECT count(*) AS n FROM message_counts")[0]["n"] == 0
        assert spool.rows("SELECT n FROM message_count_totals WHERE state = 'queued'")[0]["n"] == 1


@pytest.mark.parametrize("made_by_an_older_version", [False, True])
def test_a_time_text_postgresql_cannot_read_is_left_out_of_the_latency(
        pg_cluster, made_by_an_older_version):
    """A legacy or migrated row whose created_at PostgreSQL cannot cast is sent and counted
    like any other; its enqueue-to-sent time is left out, as SQLite's julianday does."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        odd = spool.enqueue("+8613800138000", "from an old spool", sims=["m1"])
        with spool.engine.tx() as conn:
            # ISO 8601's week date: Python reads it, PostgreSQL does not
            conn.execute("UPDATE messages SET created_at = '2026-W49-7' WHERE id = ?", (odd.id,))
            if made_by_an_older_version:   # trigger functions that cast as version 8's did
                conn.execute("CREATE FUNCTION plain_cast(t text) RETURNS timestamptz "
                             "LANGUAGE sql AS 'SELECT CAST(t AS timestamptz)'")
                conn.execute("UPDATE pg_proc SET prosrc = replace(prosrc, 'modempool_time', "
                             "'plain_cast') WHERE proname LIKE 'message_counts_%'")
    with Spool(url) as spool:
        claimed = claim_next(spool, "m1", "m1:1")
        assert claimed is not None and claimed.id == odd.id
        spool.mark_part_writing(odd.id, 1, 1, lease_owner="m1:1")
        spool.mark_last_part_sent(odd.id, 1, None, 7, lease_owner="m1:1")
        assert spool.get(odd.id).state.value == "sent"
        assert spool.counts()["sent"] == 1
        assert sum(n for _, n, _ in spool.engine.send_latency()) == 0


def _counted(spool) -> tuple:
    return spool.counts(), spool.metrics.sim_outcomes(), spool.metrics.send_latency()


def test_a_version_9_spool_opens_as_version_10_with_the_same_counts(pg_cluster):
    from tests.modempool.test_spool_metrics import send_some

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        send_some(spool)
        ids = [spool.enqueue(f"1390013900{i}", "x").id for i in range(6)]
        spool.cancel(ids[0])
        spool.engine.counts.fold()            # some in the totals, some still changes
        spool.cancel(ids[1])
        before = _counted(spool)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for statement in AS_VERSION_9:
            conn.execute(statement)
    with Spool(url) as spool:
        assert spool.rows("SELECT version FROM modempool_schema")[0][0] == SCHEMA_VERSION >= 10
        assert _counted(spool) == before
        assert before[0]["cancelled"] == 2 and before[1][("m1", "sent")] == 2


def test_the_upgrade_to_version_10_waits_for_a_version_9_fold(pg_cluster):
    """A version 9 daemon's fold (holding the fold lock) on another box: the upgrade waits for
    it before it touches the tables of changes, instead of deadlocking with it."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        spool.enqueue("13800138000", "hi")
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for statement in AS_VERSION_9:
            conn.execute(statement)
    opened: list[int] = []

    def upgrade() -> None:
        with Spool(url) as spool:
            opened.append(spool.counts()["queued"])

    with psycopg.connect(url, autocommit=True) as fold, fold.transaction():
        fold.execute("SELECT pg_advisory_xact_lock(%s)", (_FOLD_LOCK,))
        fold.execute("DELETE FROM message_counts")   # what a version 9 fold begins with ...
        upgrading = threading.Thread(target=upgrade)
        upgrading.start()
        waiting = "SELECT locktype, objid FROM pg_locks WHERE NOT granted"
        deadline = time.monotonic() + 60
        while not (waits := fold.execute(waiting).fetchall()):
            assert time.monotonic() < deadline and upgrading.is_alive()
            time.sleep(0.01)   # polling the server's lock table, not waiting for time
        # on the fold lock, not on a row the fold holds (where a deadlock begins)
        assert waits == [("advisory", _FOLD_LOCK & 0xFFFFFFFF)]
        fold.execute("INSERT INTO message_counts (state, sim, n) VALUES ('queued', NULL, 1)")
    upgrading.join(60)
    assert opened == [1]


def test_keys_are_locked_in_the_order_of_the_lock_numbers_not_of_their_text(pg_cluster):
    """`engine.lock_keys` (group commit's): a batch holding its first lock while it waits for
    another could deadlock with a batch that ordered the same locks otherwise."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, psycopg.connect(url, autocommit=True) as other:
        # two keys whose text order and whose lock numbers' order disagree
        first, second = next((a, b) for a, b in (("sender:a", f"sender:b{n}") for n in range(99))
                             if other.execute("SELECT hashtext(%s) > hashtext(%s)",
                                              (a, b)).fetchone()[0])
        mine = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s"
        with other.transaction():
            other.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x6D70, second))
            pids: list[int] = []

            def lock_both() -> None:
                with spool.transaction() as conn:
                    pids.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
                    spool.engine.lock_keys(conn, [first, second])

            locking = threading.Thread(target=lock_both)
            locking.start()
            deadline = time.monotonic() + 60
            while not (pids and other.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                              "AND pid = %s", (pids[0],)).fetchone()[0]):
                assert time.monotonic() < deadline and locking.is_alive()
                time.sleep(0.01)   # polling the server's lock table, not waiting for time
            # waiting for the lower number (the second key's) while holding nothing
            assert other.execute(mine, (pids[0],)).fetchone()[0] == 0
        locking.join(60)
        assert not locking.is_alive()


def test_rows_are_read_by_name_and_position_whatever_the_statement(pg_cluster):
    """The row factory reads each result's column names from the result itself."""
    with Spool(pg_cluster.new_schema()) as spool:
        message = spool.enqueue("+8613800138000", "rows")
        engine = spool.engine
        [row] = engine.rows("SELECT id, to_number AS recipient, 1 + 1 AS two FROM messages")
        assert (row["id"], row["recipient"], row["two"]) == (message.id, "+8613800138000", 2)
        assert tuple(row) == (message.id, "+8613800138000", 2)
        assert row.keys() == ["id", "recipient", "two"]
        [other] = engine.rows("SELECT to_number AS id FROM messages")   # same name, other shape
        assert other["id"] == "+8613800138000"
        with engine.tx() as conn:
            assert conn.execute("UPDATE messages SET held = 0 WHERE id = -1").rowcount == 0
            assert conn.execute("SELECT 1 WHERE false").fetchall() == []
