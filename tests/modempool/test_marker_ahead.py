"""A part's marker is committed while the modem is asked for its prompt (`sending.py`), so it
may be in the spool before the modem refuses the `AT+CMGS` itself. Such a refusal settles it:
the part is failed, never left writing (which a crash would turn into an ambiguous message),
and the message is retried or failed as for any refusal. The daemon runs in this event loop on
each engine (PostgreSQL: its spool calls in threads); the modem is simulated on a pty."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from modempool.config import parse_config
from modempool.dispatch.daemon import Daemon
from simulator import SimulatedBank
from tests.modempool.daemon_harness import eventually, network_messages, outcomes

pytestmark = pytest.mark.timeout(60)

TO = "+8613800138000"


@contextlib.asynccontextmanager
async def one_modem(tmp_path: Path, target, retry: str):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=11) as bank:
        where = (f'url = "{target}"' if str(target).startswith("postgres")
                 else f'path = "{target}"')
        [device] = bank.devices
        config = parse_config(f'[spool]\n{where}\n\n[retry]\n{retry}\n\n[[modem]]\nname = "m1"\n'
                              f'port = "{device}"\n', tmp_path / "pool.toml")
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, install_signals=False)
        running = asyncio.create_task(daemon.run())
        await eventually(lambda: daemon.ready.is_set() or running.done())
        try:
            yield bank, spool
        finally:
            daemon.stop()
            await running
            spool.close()


async def test_a_send_refused_before_the_prompt_is_retried_and_goes_out_once(tmp_path,
                                                                           spool_target):
    async with one_modem(tmp_path, spool_target, "backoff = 0.05") as (bank, spool):
        bank.set_fault("m1", "command_error", command="+CMGS", code=500, count=1)
        message = spool.enqueue(TO, "refused at AT+CMGS, then sent")
        await eventually(lambda: spool.get(message.id).state.value in ("sent", "delivered"))
        final = spool.get(message.id)
        assert final.attempts == 2                        # the refusal was an attempt
        assert [e["text"] for e in network_messages(bank)] == [message.text]   # out once
        kinds = [e["kind"] for e in spool.events() if e["message_id"] == message.id]
        assert "requeued" in kinds and "ambiguous" not in kinds


async def test_a_send_refused_for_good_before_the_prompt_leaves_no_part_writing(tmp_path,
                                                                              spool_target):
    async with one_modem(tmp_path, spool_target, "max_attempts = 1") as (bank, spool):
        bank.set_fault("m1", "command_error", command="+CMGS", code=500)
        message = spool.enqueue(TO, "refused at AT+CMGS for good")
        await eventually(lambda: spool.get(message.id).state.value == "failed")
        assert [p["state"] for p in spool.parts(message.id)] in ([], ["failed"])
        assert spool.sent_counts("m1")[1] == 0            # nothing counted against the quota
        assert network_messages(bank) == []


def refuse_records_of(spool, text: str) -> None:
    """A trigger that refuses (not an outage: a constraint's error) to record as sent a part of
    the message whose text is `text`, on either engine."""
    with spool.engine.tx() as conn:
        if spool.engine.writes_in_with:   # PostgreSQL
            conn.execute(
                "CREATE FUNCTION refuse_record() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF (SELECT text FROM messages WHERE id = NEW.message_id) = '{text}' THEN "
                "RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$")
            conn.execute("CREATE TRIGGER refuse_record BEFORE UPDATE ON parts FOR EACH ROW "
                         "WHEN (NEW.state = 'sent') EXECUTE FUNCTION refuse_record()")
        else:
            conn.execute(
                "CREATE TRIGGER refuse_record BEFORE UPDATE ON parts WHEN NEW.state = 'sent' "
                "BEGIN SELECT RAISE(ABORT, 'refused for the test') WHERE (SELECT text FROM "
                f"messages WHERE id = NEW.message_id) = '{text}'; END")


async def test_a_record_refused_for_good_fails_alone_and_its_sim_goes_on(tmp_path, spool_target):
    """The record of the first message is refused (a trigger): it is tried alone, called
    ambiguous (an outcome, committed), and the SIM goes on; the records of the messages after
    it commit (they were refused with it, one commit after another, and left SENDING)."""
    async with one_modem(tmp_path, spool_target, "backoff = 0.05") as (bank, spool):
        bank.set_fault("m1", "no_status_report")   # no report settles the first meanwhile
        refuse_records_of(spool, "refused record")
        ids = spool.enqueue_many([{"to": TO, "text": text} for text in
                                  ("refused record", "second", "third")])
        assert await outcomes(spool, ids) == ["ambiguous", "sent", "sent"]
        assert "spool refused its record" in spool.get(ids[0]).error
        assert sorted(e["text"] for e in network_messages(bank)) == sorted(
            ["refused record", "second", "third"])             # each out once
        assert [m.state.value for m in spool.get_many(ids)] == ["ambiguous", "sent", "sent"]


async def test_a_record_refused_for_good_with_nothing_next_is_called_ambiguous(tmp_path,
                                                                               spool_target):
    """The same refusal with no next part to mark: the record is written with the burst's
    (`_write_records`), refused, tried alone and called ambiguous, not tried again for ever."""
    async with one_modem(tmp_path, spool_target, "backoff = 0.05") as (bank, spool):
        bank.set_fault("m1", "no_status_report")
        refuse_records_of(spool, "refused record")
        message = spool.enqueue(TO, "refused record")
        assert await outcomes(spool, [message.id]) == ["ambiguous"]
        assert [e["text"] for e in network_messages(bank)] == ["refused record"]


def on_ambiguity_of(spool, text: str, name: str, plpgsql: str, sqlite: str) -> None:
    """A trigger `name` run when the message whose text is `text` is called ambiguous: its
    body `plpgsql` on PostgreSQL, `sqlite` on SQLite."""
    with spool.engine.tx() as conn:
        if spool.engine.writes_in_with:   # PostgreSQL
            conn.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                         f"BEGIN {plpgsql} RETURN NEW; END $$")
            conn.execute(f"CREATE TRIGGER {name} BEFORE UPDATE ON messages FOR EACH ROW "
                         f"WHEN (NEW.state = 'ambiguous' AND NEW.text = '{text}') "
                         f"EXECUTE FUNCTION {name}()")
        else:
            conn.execute(f"CREATE TRIGGER {name} BEFORE UPDATE ON messages WHEN NEW.state = "
                         f"'ambiguous' AND NEW.text = '{text}' BEGIN {sqlite} END")


def refuse_ambiguity_of(spool, text: str) -> None:
    """A trigger that refuses to call the message whose text is `text` ambiguous, on either
    engine (dropped with `allow_ambiguity`)."""
    on_ambiguity_of(spool, text, "refuse_ambiguity",
                    "RAISE EXCEPTION 'ambiguity refused for the test';",
                    "SELECT RAISE(ABORT, 'ambiguity refused for the test');")


def allow_ambiguity(spool) -> None:
    with spool.engine.tx() as conn:
        conn.execute("DROP TRIGGER refuse_ambiguity"
                     + (" ON messages" if spool.engine.writes_in_with else ""))


async def test_a_refused_record_that_may_not_be_called_ambiguous_holds_its_sim(
        tmp_path, spool_target, caplog):
    """The first message's record is refused for good, and so is calling it ambiguous: it
    stays in hand (SENDING, its lease held), the SIM writes nothing more (the next message
    waits unwritten at its marker, which carries that outcome), one ERROR line says so
    (no traceback), and it is tried again with backoff, the modem staying up (not reopened
    again and again). Once the database takes the outcome, the first is ambiguous and the
    second goes out, each once."""
    import logging

    with caplog.at_level(logging.INFO, logger="modempool"):
        async with one_modem(tmp_path, spool_target, "backoff = 0.05") as (bank, spool):
            bank.set_fault("m1", "no_status_report")   # no report settles the first meanwhile
            refuse_records_of(spool, "refused record")
            refuse_ambiguity_of(spool, "refused record")
            first, second = spool.enqueue_many([{"to": TO, "text": text}
                                                for text in ("refused record", "second")])
            await eventually(lambda: f"message {second} part 1/1 is refused by the database"
                             in caplog.text, what="the second part waits for the outcome")
            assert [e["text"] for e in network_messages(bank)] == ["refused record"]
            assert spool.get(first).state.value == "sending"      # in hand, no outcome yet
            assert spool.parts(second) == []                      # not marked: not written
            allow_ambiguity(spool)
            await eventually(lambda: spool.get(second).state.value == "sent",
                             what="the second sent once the first has an outcome")
            assert spool.get(first).state.value == "ambiguous"
            assert "spool refused its record" in spool.get(first).error
    assert sorted(e["text"] for e in network_messages(bank)) == ["refused record", "second"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR
              and "refused to call it ambiguous" in r.getMessage()]
    assert errors and all(r.exc_info is None and "\n" not in r.getMessage()
                          for r in errors), caplog.text
    assert "down (" not in caplog.text and "unexpected error" not in caplog.text, caplog.text
