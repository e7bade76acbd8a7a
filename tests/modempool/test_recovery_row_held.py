"""A SIM's give-back meeting a message another transaction holds, on PostgreSQL (audit24 L1).
Recovery's locking read takes FOR NO KEY UPDATE SKIP LOCKED: a foreign key's KEY SHARE (a row
inserted against the message or its part, such as a delivery report, in a transaction still
open) no longer holds the give-back, with no bound; the writers it must not race still do
(test_release_race: an operator's cancel, a record's part; test_recovery_in_flight: records).
A message held for minutes is said as a WARNING naming the session that holds it."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from modempool.spool import Spool
from modempool.spool.model import utcnow
from tests.modempool.test_group_commit_locks import wait_until
from tests.modempool.test_spool_report_locks import lock_waiters

TO = "+8613800138000"
OWNER = "test/m1"


def _writing(spool: Spool) -> int:
    """A one-part message of SIM m1 marked writing; its id."""
    message = spool.enqueue(TO, "held")
    spool.claim(message.id, "m1", OWNER)
    spool.mark_part_writing(message.id, 1, 1, lease_owner=OWNER)
    return message.id


def test_a_report_stored_while_recovery_holds_the_message_row_does_not_wait(pg_cluster):
    """Recovery has locked the message row (its locking read, before it looks at the parts)
    when a delivery report of the message's part 1 is stored (the real store, in another
    connection). The report's foreign key takes KEY SHARE on the message: it does not wait for
    recovery now. Before (FOR UPDATE) it waited there, holding what it took before its insert
    (the SIM's counters, when it proved an earlier ambiguous part: `settle_before`), which a
    recovery settling another message by its stored report asks for next: a deadlock cycle.
    Fails on 079b1cb: the store waits."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as reports:
        message = spool.enqueue(TO, "长" * 100)   # two parts
        claimed = spool.claim(message.id, "m1", OWNER)
        spool.mark_part_writing(message.id, 1, 2, lease_owner=OWNER)
        spool.mark_part_sent(message.id, 1, 9, 10, attempt=claimed.attempts)
        stored: dict[str, object] = {}

        def store() -> None:
            stored["match"] = reports.store_delivery_report("m1", 10, TO, 0)

        with spool.transaction() as conn:   # recovery's locking read of the give-back
            assert conn.execute("SELECT id FROM messages WHERE id = ?"
                                + spool.engine.skip_locked_no_key, (message.id,)).fetchall() \
                == [(message.id,)]
            storing = threading.Thread(target=store)
            storing.start()
            wait_until(lambda: not storing.is_alive() or lock_waiters(reports) > 0,
                       "the report neither stored nor waiting")
            waited = storing.is_alive()
        storing.join()
        assert not waited and stored["match"].message_id == message.id


def test_a_row_inserted_against_the_message_does_not_hold_the_give_back(pg_cluster):
    """A transaction that inserted a row naming the message (a foreign key's KEY SHARE on it:
    here a report row written by another program) and stays open; another KEY SHARE on the
    part: the give-back settles the message. (modempool's own report store also updates the
    part it reports on, which holds the give-back until it commits: `recovery._part_held`.)"""
    url = pg_cluster.new_schema()
    with Spool(url) as spool, Spool(url) as holder:
        message_id = _writing(spool)
        with holder.transaction() as conn:
            conn.execute("INSERT INTO delivery_reports (sim, message_reference, recipient, "
                         "status, delivered, received_at, message_id) VALUES ('m1', 9, ?, 0, "
                         "1, '2026-12-07T00:00:00', ?)", (TO, message_id))
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR KEY SHARE", (message_id,))
            recovery = spool.recover_leases(owner=OWNER)
            assert (recovery.held, recovery.ambiguous) == ((), (message_id,))


def _pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_a_message_held_for_minutes_is_a_warning_naming_the_holder(pg_cluster, caplog):
    url = pg_cluster.new_schema()
    caplog.set_level(logging.INFO, logger="modempool.spool.recovery")
    with Spool(url) as spool, Spool(url) as holder, Spool(url) as other:
        part_held, row_held = _writing(spool), _writing(spool)
        start = utcnow()
        with holder.transaction() as conn, other.transaction() as second:
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR NO KEY UPDATE",
                         (part_held,))
            for session in (conn, second):   # two sessions share it: a MultiXact
                session.execute("SELECT 1 FROM messages WHERE id = ? FOR SHARE", (row_held,))
            for minutes in (0, 3, 6):   # each give-back of the SIM (a round's) finds them held
                at = start + timedelta(minutes=minutes)
                assert set(spool.recover_leases(owner=OWNER, now=at).held) == {part_held,
                                                                               row_held}
            pids = sorted((_pid(conn), _pid(second)))
        said = [(r.levelname, r.getMessage()) for r in caplog.records
                if r.name == "modempool.spool.recovery"]
        assert [level for level, _ in said] == ["INFO", "INFO", "WARNING", "WARNING"]
        row_line, part_line = (line for level, line in said if level == "WARNING")
        assert part_line.startswith(f"message {part_held}: a part of it is being written by "
                                    "another transaction (its record) for minutes: 6 min now, "
                                    f"by pid {pids[0]} (idle in transaction, its transaction "
                                    "open since ")
        assert row_line.startswith(f"message {row_held}: its row is held by another "
                                   "transaction for minutes: 6 min now, by pid ")
        assert [f"pid {pid} (idle in transaction" in row_line for pid in pids] == [True, True]
        assert row_line.endswith("left SENDING, its SIM waits to be given back (end that "
                                 "session; docs/scale-out.md: idle_in_transaction_session_timeout)")
        recovery = spool.recover_leases(owner=OWNER, now=start + timedelta(minutes=7))
        assert sorted(recovery.ambiguous) == sorted((part_held, row_held))
