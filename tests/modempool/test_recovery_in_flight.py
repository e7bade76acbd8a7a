"""A daemon judged dead while it lives (stalled, partitioned, its beat slow) records a send its
modem confirmed while another daemon settles its leases (`recover_dead_owners`), on one
PostgreSQL spool (dead23). The record locks the part, then the message; recovery locks the
message first. Recovery never waits on a part: a message one of whose parts another transaction
holds (a record on its way) is left SENDING for the next recovery. A record that comes after
the recovery called its message ambiguous makes it SENT when every part is then out (the
modem's answer proves it, by recovery's own rule), instead of a 'sent' part under an
AMBIGUOUS message that nothing settles later.

The interleavings are made by a third connection: holding the part's row (a record on its
way), or holding a lock that a trigger on the message's update to 'ambiguous' waits for (the
recovery stopped between its decision and its writes). Each wait is seen on the server's lock
waiters, not slept for, asked on a connection outside the holder's transaction (inside it
PostgreSQL lists only the sessions there were at its first look at `pg_stat_activity`)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.model import Recovery, utcnow
from tests.modempool.test_group_commit_locks import wait_until
from tests.modempool.test_marker_ahead import on_ambiguity_of
from tests.modempool.test_spool_report_locks import TO, lock_waiters, writing

# The lease of the daemon judged dead (host:pid:run/sim), and the text `writing` sends.
OWNER = "host-a:101:run-a/m1"
TEXT = "验证码 1234"


@pytest.fixture
def daemons(pg_cluster):
    """Two daemons' spools on one PostgreSQL schema (the silent one, the one taking over) and a
    third connection pool that makes the interleaving."""
    url = pg_cluster.new_schema()
    with Spool(url) as silent, Spool(url) as taker, Spool(url) as holder:
        yield silent, taker, holder


def take_over(spool: Spool, outcome: dict[str, Any]) -> None:
    """What `recover_dead_owners` does with the silent daemon's run-out lease."""
    try:
        outcome["recovery"] = spool.recover_leases(OWNER, expired_only=True,
                                                   now=utcnow() + timedelta(minutes=5))
    except Exception as exc:   # what the test reports: a deadlock's victim
        outcome["recovery"] = exc


def record(spool: Spool, message_id: int, outcome: dict[str, Any]) -> None:
    """The silent daemon's record of the modem's answer (TP-MR 77)."""
    try:
        outcome["record"] = spool.mark_last_part_sent(message_id, 1, None, 77,
                                                      lease_owner=OWNER)
    except Exception as exc:
        outcome["record"] = exc


def parts_of(spool: Spool, message_id: int) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in spool.rows(
        "SELECT state, message_reference FROM parts WHERE message_id = ? ORDER BY seq",
        (message_id,))]


def test_recovery_leaves_a_message_whose_part_a_record_holds(daemons):
    """The record holds the part (it locks it first): the recovery does not wait for it, leaves
    the message SENDING (no ERROR, not refused), and the record then commits it SENT."""
    silent, taker, holder = daemons
    message_id = writing(silent, "m1", OWNER)
    outcome: dict[str, Any] = {}
    with holder.transaction() as conn:   # the silent daemon's record on its way
        conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR UPDATE", (message_id,))
        recovery = threading.Thread(target=take_over, args=(taker, outcome))
        recovery.start()
        wait_until(lambda: not recovery.is_alive() or lock_waiters(silent) > 0,
                   "the recovery neither ended nor waited")
        waited = lock_waiters(silent)
    recovery.join()
    assert waited == 0                   # before: it waited on the part, holding the message
    assert outcome["recovery"] == Recovery(held=(message_id,))
    assert silent.get(message_id).state is MessageState.SENDING
    record(silent, message_id, outcome)
    assert outcome["record"] == [True]
    assert silent.get(message_id).state is MessageState.SENT
    assert parts_of(silent, message_id) == [("sent", 77)]
    # and the next recovery finds nothing left of it
    take_over(taker, outcome)
    assert outcome["recovery"] == Recovery()


def test_a_record_meeting_the_recovery_of_its_lease_ends_sent_without_a_deadlock(daemons):
    """The recovery has decided (ambiguous: a part is being written) and is stopped before it
    writes; the silent daemon's record comes then. Before, the record locked the part and
    waited for the message, the recovery held the message and waited for the part: PostgreSQL
    aborted one as a deadlock. Now the recovery holds the part already, the record waits for
    it, and then proves the message sent."""
    silent, taker, holder = daemons
    message_id = writing(silent, "m1", OWNER)
    on_ambiguity_of(holder, TEXT, "recovery_stops", "PERFORM pg_advisory_xact_lock(2323);", "")
    outcome: dict[str, Any] = {}
    with holder.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(2323)")
        recovery = threading.Thread(target=take_over, args=(taker, outcome))
        recovery.start()
        wait_until(lambda: lock_waiters(silent) == 1, "the recovery never reached its writes")
        recording = threading.Thread(target=record, args=(silent, message_id, outcome))
        recording.start()
        wait_until(lambda: lock_waiters(silent) == 2, "the record never met the recovery")
    recovery.join()
    recording.join()
    assert outcome == {"recovery": Recovery(ambiguous=(message_id,)), "record": [True]}
    assert silent.get(message_id).state is MessageState.SENT
    assert parts_of(silent, message_id) == [("sent", 77)]
    assert [e["kind"] for e in silent.events(message_id)][-2:] == ["lease-recovered", "sent"]


def test_a_record_after_recovery_proves_an_ambiguous_message_sent(tmp_path: Path):
    """On SQLite (one writer: no overlap, but the same order when a record is written again
    after the stop's recovery): the last part's record makes the message SENT once every part
    is out, and counts the part once."""
    with Spool(tmp_path / "spool.db") as spool:
        message = spool.enqueue(TO, "a" * 200)           # two parts
        assert spool.claim(message.id, "m1", OWNER, 60) is not None
        spool.mark_part_writing(message.id, 1, 2, lease_owner=OWNER)
        spool.mark_part_sent(message.id, 1, 9, 76)
        spool.mark_part_writing(message.id, 2, 2, lease_owner=OWNER)
        assert spool.recover_leases(OWNER).ambiguous == (message.id,)
        counted = spool.sent_counts("m1")
        assert spool.mark_last_part_sent(message.id, 2, 9, 77, lease_owner=OWNER) == [True]
        assert spool.get(message.id).state is MessageState.SENT
        assert parts_of(spool, message.id) == [("sent", 76), ("sent", 77)]
        # today and this month counted it ambiguous, and count it sent: once
        assert spool.sent_counts("m1")[1:] == counted[1:]
        # written again (its commit's answer lost): recorded already, nothing counted twice
        assert spool.mark_last_part_sent(message.id, 2, 9, 77, lease_owner=OWNER) == [True]
        assert spool.sent_counts("m1")[1:] == counted[1:]
