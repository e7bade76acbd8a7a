"""The sending path names its claim's attempt and SIM in what it records (fix24: rev23 M2's
wiring, and the older attempt's SMS counted).

The daemon runs in this event loop on the suite's PostgreSQL cluster, its modem simulated on a
pty. Its modem confirms attempt 1 of a message; while the record of that confirmation waits
(a holder has the report locks of the SIM), another daemon recovers the lease, the operator
retries the message and it is claimed and marked as attempt 2 on m2; then the record goes on.
It must leave attempt 2's part alone (the sending path passed `attempt`: with None, "any
attempt", it wrote its TP-MR over attempt 2's part) and count the SMS on m1, which sent it
(the path passed `sim`), once. Both places that record are taken: the last part's record
(`record_soon`) and a first part's (`mark_part_sent`, a two-part message).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from modempool.spool import Spool
from modempool.spool.model import utcnow
from modempool.spool.verdicts import report_key
from tests.modempool.daemon_harness import eventually
from tests.modempool.test_marker_ahead import one_modem
from tests.modempool.test_spool_report_locks import lock_waiters

pytestmark = pytest.mark.timeout(120)

TO = "+8613800138000"
B = "host-b:202:run-b/m2"
FIRST_PART = ("SELECT state, attempt, sim, message_reference FROM parts "
              "WHERE message_id = ? AND seq = 1")


async def test_a_late_record_from_the_sending_path_names_its_attempt_and_sim(tmp_path,
                                                                           pg_cluster):
    """Fails on 079b1cb (the older attempt's SMS not counted on m1: 0), and with sending.py
    passing attempt=None (attempt 2's part written with attempt 1's TP-MR)."""
    url = pg_cluster.new_schema()
    async with one_modem(tmp_path, url, "backoff = 0.05") as (bank, spool):
        bank.set_fault("m1", "no_status_report")
        with Spool(url) as b, Spool(url) as holder:
            one = await _taken_over_while_recorded(spool, b, holder, "one part", parts=1)
            assert b.sent_counts("m1")[1] == 1
            two = await _taken_over_while_recorded(spool, b, holder, "two parts " * 20,
                                                   parts=2)
            assert b.sent_counts("m1")[1] == 2      # each older attempt's SMS, once
            for message_id in (one, two):
                late = [e for e in b.events(message_id) if e["kind"] == "late-record"]
                assert [(e["sim"], "attempt 1's part 1" in e["detail"]) for e in late] == [
                    ("m1", True)]


async def _taken_over_while_recorded(spool: Spool, b: Spool, holder: Spool, text: str, *,
                                     parts: int) -> int:
    """`text` sent by the daemon's m1 as attempt 1, its record held back until B has claimed
    and marked attempt 2 on m2; once that record is in, what it left of the first part."""
    with holder.transaction() as conn:   # every report lock of m1: its record waits on it
        holder.engine.lock_keys(conn, [report_key("m1", r) for r in range(256)])
        message = spool.enqueue(TO, text)
        await eventually(lambda: lock_waiters(b) >= 1, what="attempt 1's record waiting")
        assert [tuple(r) for r in b.rows(FIRST_PART, (message.id,))] == [
            ("writing", 1, "m1", None)]
        owner = b.get(message.id).lease_owner
        assert b.recover_leases(owner, expired_only=True, now=utcnow() + timedelta(
            days=1)).ambiguous == (message.id,)   # its daemon judged dead
        with b.transaction():   # retried and claimed at once: the daemon's m1 never sees it
            b.retry(message.id)
            assert b.claim(message.id, "m2", B, 60) is not None
        b.mark_part_writing(message.id, 1, parts, lease_owner=B)
    # the holder gone, the record goes on: an event says so, or it took the part over
    await eventually(lambda: [e for e in b.events(message.id) if e["kind"] == "late-record"]
                     or b.rows(FIRST_PART, (message.id,))[0][0] != "writing",
                     what="attempt 1's record written")
    assert [tuple(r) for r in b.rows(FIRST_PART, (message.id,))] == [("writing", 2, "m2", None)]
    return message.id
