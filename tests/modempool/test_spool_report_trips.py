"""A delivery report stored on PostgreSQL waits for the server few times: its transaction is
one pipeline (`engine.one_trip`), read back only where a row decides what comes next (the
match, settle_before's reads) and with its COMMIT. Each wait of a daemon's inbound thread for
the server is a wake-up that takes the interpreter's lock from the event loop driving every
modem (9 waits a report before: BEGIN, each statement, COMMIT).

The waits are counted where psycopg blocks for the server's answers: outside a pipeline at
every statement, inside one where rows are fetched, synced, or the pipeline is left."""

from __future__ import annotations

import psycopg
import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.records import SentPart

TO = "+8613800138000"
#: psycopg's generators that read answers inside a pipeline (the others only send)
_READS = ("_fetch_gen", "_sync_gen", "_exit_gen")


@pytest.fixture
def waits(monkeypatch):
    """How many times psycopg waited for the server's answers while `counting` is true."""
    counted = {"on": False, "n": 0}
    wait = psycopg.Connection.wait

    def counting(self, gen, *args, **kwargs):
        name = getattr(gen, "__qualname__", "")
        if counted["on"] and (self._pipeline is None or name.endswith(_READS)) \
                and not (name.endswith("_commit_gen") and self.info.transaction_status == 0):
            counted["n"] += 1
        return wait(self, gen, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "wait", counting)
    return counted


def sent(spool: Spool, reference: int) -> int:
    message = spool.enqueue(TO, f"验证码 {reference}")
    spool.claim(message.id, "m1", "a", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="a")
    spool.mark_many_sent([SentPart(message.id, 1, None, reference, lease_owner="a")])
    return message.id


def test_a_matched_report_waits_for_the_server_at_most_four_times(pg_cluster, waits):
    with Spool(pg_cluster.new_schema()) as spool:
        delivered, failed = sent(spool, 7), sent(spool, 8)
        waits["on"] = True
        match = spool.store_delivery_report("m1", 7, TO, 0)
        waits["on"] = False
        assert (match.message_id, match.message_state) == (delivered, "delivered")
        assert waits["n"] <= 4, waits["n"]   # the lock and match, settle_before's 2, the COMMIT
        # a final failure: the message's state read back with the COMMIT as well
        assert spool.store_delivery_report("m1", 8, TO, 0x41).message_state == "failed"
        assert spool.get(failed).state is MessageState.FAILED
        assert spool.get(delivered).state is MessageState.DELIVERED
