"""Reports shown without a storage index (``+CDS``) while the spool cannot take them: held in
memory in order, stored once it answers; past the bound and at the daemon's stop each one
dropped is logged with its PDU. The spool is a real SQLite file whose write lock another
connection holds (past the busy timeout: SpoolUnavailable), then lets go."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from at_commands.events import StatusReport
from at_commands.inbound import decode
from modempool.dispatch import held_inbound
from modempool.dispatch.held_inbound import HeldInbound
from modempool.dispatch.inbound import InboundStore
from pdu import encode_status_report
from tests.modempool.daemon_harness import eventually


def _report(reference: int) -> StatusReport:
    pdu_hex = encode_status_report(reference, "+8613800138000", status=0)
    return StatusReport("m1", pdu_hex, decode(pdu_hex))


def _stored(spool_path) -> list[int]:
    with sqlite3.connect(spool_path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT message_reference FROM delivery_reports ORDER BY id")]


async def _taken_or_held(store: InboundStore, held: HeldInbound, references) -> None:
    """Each report stored, or held when the spool cannot answer (its write lock is held)."""
    for reference in references:
        try:
            await store.take("m1", _report(reference))
        except Exception as exc:
            held.hold(_report(reference), exc)


async def test_held_reports_are_stored_in_order_once_the_spool_answers(locked_spool, tmp_path,
                                                                      caplog):
    spool, other = locked_spool
    store = InboundStore(spool, None, handlers=[])
    held = HeldInbound("m1", store, logging.getLogger("modempool.modem.m1"))
    await _taken_or_held(store, held, (7, 8, 9))
    assert [e.decoded.message_reference for e in held.waiting] == [7, 8, 9]
    assert caplog.text.count("held in memory") == 1  # one line for the outage, no traceback
    assert "Traceback" not in caplog.text
    other.rollback()
    await eventually(lambda: not held.waiting, what="the held reports stored")
    assert _stored(tmp_path / "spool.db") == [7, 8, 9]
    await held.close()
    assert "dropped" not in caplog.text


async def test_past_the_bound_and_at_the_stop_each_dropped_report_is_logged_with_its_pdu(
        locked_spool, monkeypatch, caplog):
    spool, _ = locked_spool
    monkeypatch.setattr(held_inbound, "LIMIT", 2)
    held = HeldInbound("m1", InboundStore(spool, None, handlers=[]),
                       logging.getLogger("modempool.modem.m1"))
    reports = [_report(reference) for reference in (1, 2, 3)]
    for report in reports:
        held.hold(report)
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and reports[2].pdu in dropped[0].getMessage()
    assert "more than 2 waiting" in dropped[0].getMessage()
    await held.close()  # the daemon stops, the spool still locked
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 3
    assert all(report.pdu in line for report, line in zip(reports[:2], dropped[1:]))
    assert all("daemon stopped" in line for line in dropped[1:])


async def test_at_the_stop_what_is_held_is_stored_when_the_database_answers_again(
        locked_spool, tmp_path, caplog):
    # the outage ends just before the stop: close() cuts the backoff short and stores them,
    # rather than dropping what the database would now take
    spool, other = locked_spool
    store = InboundStore(spool, None, handlers=[])
    held = HeldInbound("m1", store, logging.getLogger("modempool.modem.m1"))
    await _taken_or_held(store, held, (4, 5, 6))
    other.rollback()
    await held.close()
    assert _stored(tmp_path / "spool.db") == [4, 5, 6]
    assert not held.waiting and "dropped" not in caplog.text


async def test_at_the_stop_each_held_report_still_unstored_is_logged_once_even_if_cancelled(
        locked_spool, caplog):
    spool, _ = locked_spool   # the write lock stays held: every last attempt fails
    held = HeldInbound("m1", InboundStore(spool, None, handlers=[]),
                       logging.getLogger("modempool.modem.m1"))
    reports = [_report(reference) for reference in (1, 2)]
    for report in reports:
        held.hold(report)
    closing = asyncio.create_task(held.close())
    await asyncio.wait_for(held.backlog.closing.wait(), 60)   # the stop has begun (hang guard)
    closing.cancel()   # the daemon's task group cancels the stop itself
    with pytest.raises(asyncio.CancelledError):
        await closing
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert [sum(report.pdu in line for line in dropped) for report in reports] == [1, 1]
    assert not held.waiting
