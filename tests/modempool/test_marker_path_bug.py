"""A bug met on the marker path (tidy19's review, M1) in a running daemon: the record that the
next part's marker carries is refused by the database, and calling that message ambiguous
then meets a bug (not a refusal: here an operator's trigger that fails at run time, a
function that does not exist, malformed JSON). The bug goes up to the modem's task: its
traceback logged once, the modem taken down and opened again; the next message is
not written with it (its marker never committed) and goes out once the modem is back; the
message whose outcome met the bug stays SENDING (recovery meets the bug too: its traceback
once, then one line a minute, the SIM's other messages settled) and is settled (ambiguous)
once the bug is gone. The old code's recovery raised the bug: the SIM's leases were never
given back, a WARNING line every dispatch round, the next message never sent.
Both engines, a real daemon (in this process) on a simulated modem."""

from __future__ import annotations

import logging

from modempool.spool import Spool
from tests.modempool.daemon_harness import eventually, network_messages
from tests.modempool.test_marker_ahead import TO, on_ambiguity_of, one_modem, refuse_records_of

POISON = "its outcome meets a bug"


def ambiguity_meets_a_bug(spool, text: str) -> None:
    """Calling the message `text` ambiguous runs a trigger that fails, as a bug does:
    PostgreSQL, a function missing (42883); SQLite, malformed JSON read at run time (a table
    missing would fail every UPDATE of messages: SQLite resolves a trigger's tables as it
    prepares one)."""
    on_ambiguity_of(spool, text, "ambiguity_bug", "PERFORM no_such_function(NEW.id);",
                    "SELECT json_extract('not json', '$.id');")


def bug_fixed(spool) -> None:
    with spool.engine.tx() as conn:
        conn.execute("DROP TRIGGER ambiguity_bug"
                     + (" ON messages" if spool.engine.writes_in_with else ""))
        conn.execute("DROP TRIGGER refuse_record"
                     + (" ON parts" if spool.engine.writes_in_with else ""))


async def test_a_bug_on_the_marker_path_takes_the_modem_down_once_and_loses_nothing(
        tmp_path, spool_target, caplog):
    with caplog.at_level(logging.INFO, logger="modempool"):
        async with one_modem(tmp_path, spool_target, "backoff = 0.05") as (bank, spool):
            bank.set_fault("m1", "no_status_report")   # no report settles the first meanwhile
            refuse_records_of(spool, POISON)
            ambiguity_meets_a_bug(spool, POISON)
            first, second = spool.enqueue_many([{"to": TO, "text": text}
                                                for text in (POISON, "second")])
            await eventually(lambda: "down (" in caplog.text, what="the modem taken down")
            await eventually(lambda: spool.get(second).state.value == "sent",
                             what="the second sent once the modem is back")
            assert spool.get(first).state.value == "sending"   # its lease: recovery's
            bug_fixed(spool)
        with Spool(spool_target) as spool:
            assert spool.get(first).state.value == "ambiguous"     # settled at the stop
    assert sorted(e["text"] for e in network_messages(bank)) == [POISON, "second"]
    traced = [r.getMessage() for r in caplog.records if r.exc_info is not None]
    assert traced == ["unexpected error; the other modems carry on",   # the modem task's
                      f"message {first}: recovery met a bug settling it; it stays SENDING and "
                      "is tried again"], caplog.text                    # recovery's, once
    # no line for every dispatch round (the old code: ~5 a second, the SIM given nothing)
    assert "could not give back" not in caplog.text, caplog.text
    assert caplog.text.count(f"message {first}: recovery could not settle it") <= 2
