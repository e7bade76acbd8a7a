"""A PostgreSQL role that lacks a right is the database's refusal, not the rules': the operator
hooks (auto-reply, forwarding) on a role that may not queue messages record nothing as refused;
the daemon logs one ERROR line naming the GRANT, no traceback, and the hooks wait with the SMS
(pending in the spool, as in an outage) until the GRANT is run, then answer and forward it; a report shown without a
storage index (``+CDS``) is held until the GRANT, not dropped as unstorable; a contact lookup
is not "no such contact"; a campaign's cancel is not "taken by a modem meanwhile"."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os

import psycopg
import pytest

from modempool.config import load_config
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.spool_lane import INBOUND_THREADS, SpoolLane
from modempool.operator.autoreply import AutoReplies
from modempool.spool import Spool
from modempool.spool.migrate import make_module_tables

_ROLES = itertools.count(1)

CONFIG = """
[spool]
url = {url!r}
[[autoreply]]
keywords = ["营业时间"]
reply = "每天 9:00-18:00"
[forward]
to = ["13900139000"]
"""


def role_without(pg_cluster, right: str, table: str,
                 prepare=lambda spool: None) -> tuple[str, str, str]:
    """A spool made whole by its owner (then `prepare`d) and a fresh role with every right but
    `right` on `table` (a GRANT forgotten): (owner's URL, the role's URL, the role's name)."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        make_module_tables(spool)
        prepare(spool)
    schema = url.rsplit("search_path%3D", 1)[1]
    role = f"hooks_{os.getpid()}_{next(_ROLES)}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                     f"TO {role}")
        conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
        conn.execute(f"REVOKE {right} ON {schema}.{table} FROM {role}")
    return url, url.replace("postgresql://postgres@", f"postgresql://{role}@"), role


async def test_a_missing_right_is_one_error_line_and_the_hooks_wait_for_the_grant(
        tmp_path, pg_cluster, caplog):
    from tests.modempool.daemon_harness import eventually

    owner, weak, role = role_without(pg_cluster, "INSERT", "messages")
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.format(url=weak), "utf-8")
    config = load_config(path)
    spool = config.open_spool()
    lane = SpoolLane(threads=INBOUND_THREADS)
    store = InboundStore(spool, config, lane=lane)
    first = spool.store_inbound("13800138000", "请问营业时间？", sim="m1", hooks_by=store.owner)
    later = spool.store_inbound("13700137000", "营业时间", sim="m1", hooks_by=store.owner)
    stop = asyncio.Event()

    with caplog.at_level(logging.INFO, logger="modempool"):
        await store.run_hooks(first)
        await store.run_hooks(later)
        keeping = asyncio.create_task(store.keep_up(stop, every=60.0))
        caplog.set_level(logging.DEBUG, logger="modempool.dispatch.inbound")
        await eventually(lambda: caplog.text.count("did not all run; next pass") >= 2,
                         what="two passes refused")
    lines = [record for record in caplog.records if record.levelno >= logging.INFO]
    [error] = [record for record in lines if record.levelno >= logging.ERROR]
    assert error.exc_info is None   # no traceback
    text = error.getMessage()
    assert "\n" not in text and f"the role '{role}' may not write table messages" in text
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES" in text
    assert not [record for record in lines if "refused" in record.getMessage()
                or "no auto-reply" in record.getMessage()]
    # Nothing recorded as a refusal or an answer; the SMS are kept, their hooks wait.
    assert spool.db.execute("SELECT count(*) FROM forward_log").fetchone()[0] == 0
    assert AutoReplies(spool.db).log() == []
    assert [m["text"] for m in spool.inbound()] == ["请问营业时间？", "营业时间"]
    assert [r["inbound_id"] for r in spool.inbound_hooks.waiting()] == [first.id, later.id]

    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"GRANT INSERT ON ALL TABLES IN SCHEMA {owner.rsplit('%3D', 1)[1]} "
                     f"TO {role}")
    caplog.clear()
    await eventually(lambda: not store.behind, what="the hooks run")
    stop.set()
    await keeping
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert sorted((m.to, m.text) for m in spool.list()) == [
        ("+8613700137000", "每天 9:00-18:00"),
        ("+8613800138000", "每天 9:00-18:00"),
        ("+8613900139000", "[+8613700137000] 营业时间"),
        ("+8613900139000", "[+8613800138000] 请问营业时间？")]
    assert [entry.outcome for entry in AutoReplies(spool.db).log()] == ["replied", "replied"]
    await store.close()
    await lane.drain()
    lane.close()
    spool.close()


@pytest.mark.parametrize("hook", ["autoreply", "forward"])
def test_each_hook_raises_the_missing_right(tmp_path, pg_cluster, hook):
    """Called alone (a program of its own), a hook lets the database's error out."""
    from modempool.errors import SpoolFailure
    from modempool.operator.autoreply import make_autoreply_handler
    from modempool.operator.forwarding import make_forward_handler

    _, weak, role = role_without(pg_cluster, "INSERT", "messages")
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.format(url=weak), "utf-8")
    config = load_config(path)
    handle = (make_autoreply_handler if hook == "autoreply" else make_forward_handler)(config)
    with config.open_spool() as spool:
        inbound = spool.store_inbound("13800138000", "营业时间", sim="m1")
        with pytest.raises(SpoolFailure, match=f"the role '{role}' may not write table messages"):
            handle(spool, inbound)


def test_a_contact_lookup_raises_a_missing_right(pg_cluster):
    """Not "no such contact" (a forward, a campaign's row, a job would go on without the
    contact's name and fields)."""
    from modempool.operator.contacts import AddressBook
    from modempool.spool.database_errors import SpoolForbidden

    book = lambda spool: AddressBook(spool.db).upsert("13800138000", "张三")  # noqa: E731
    _, weak, role = role_without(pg_cluster, "SELECT", "contacts", book)
    with Spool(weak) as spool:
        assert AddressBook(spool.db).find("not a number") is None
        with pytest.raises(SpoolForbidden, match=f"the role '{role}' may not read table contacts"):
            AddressBook(spool.db).find("13800138000")


def test_a_campaign_cancel_with_a_missing_right_changes_nothing(tmp_path, pg_cluster):
    """Not "taken by a modem meanwhile" for each message: the error, and the campaign still
    running with its messages queued (one transaction)."""
    from modempool.operator.campaigns import Campaigns
    from modempool.spool.database_errors import SpoolForbidden

    path = tmp_path / "modempool.toml"
    started: list[int] = []

    def campaign(spool: Spool) -> None:
        path.write_text(f"[spool]\nurl = {spool.engine.url!r}\n", "utf-8")
        made = Campaigns(spool, load_config(path))
        started.append(made.create("c", "hi", numbers=["13800138000", "13900139000"],
                                   kind="notice").id)
        made.start(started[0])

    owner, weak, role = role_without(pg_cluster, "UPDATE", "messages", campaign)
    path.write_text(f"[spool]\nurl = {weak!r}\n", "utf-8")
    config = load_config(path)
    with config.open_spool() as spool, pytest.raises(SpoolForbidden, match=role):
        Campaigns(spool, config).cancel(started[0])
    with Spool(owner) as spool:
        assert Campaigns(spool, config).get(started[0]).state.value == "running"
        assert {m.state.value for m in spool.list(campaign_id=started[0])} == {"queued"}


async def test_a_report_held_for_a_missing_right_is_stored_once_granted(pg_cluster, caplog):
    """A `+CDS` (acknowledged, in memory only) that the role may not store is held as in an
    outage, not dropped as a bug's: one ERROR line naming the GRANT, then stored once run."""
    from modempool.dispatch.held_inbound import HeldInbound
    from tests.modempool.daemon_harness import eventually
    from tests.modempool.test_held_inbound import _report, _taken_or_held

    owner, weak, role = role_without(pg_cluster, "INSERT", "delivery_reports")
    with Spool(weak) as spool:
        store = InboundStore(spool, None, handlers=[])
        held = HeldInbound("m1", store, logging.getLogger("modempool.modem.m1"))
        caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
        await _taken_or_held(store, held, (7, 8))
        await eventually(lambda: "m1:held: the database failed again" in caplog.text,
                         what="a try of the backlog refused again")
        assert [e.decoded.message_reference for e in held.waiting] == [7, 8]
        [said] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "held in memory" in said.getMessage() and said.exc_info is None
        assert f"the role '{role}' may not write table delivery_reports: GRANT" in said.getMessage()
        with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
            conn.execute(f"GRANT INSERT ON ALL TABLES IN SCHEMA {owner.rsplit('%3D', 1)[1]} "
                         f"TO {role}")
        await eventually(lambda: not held.waiting, what="the held reports stored")
        await held.close()
    with Spool(owner) as spool:
        assert [r[0] for r in spool.rows(
            "SELECT message_reference FROM delivery_reports ORDER BY id")] == [7, 8]
    assert "dropped" not in caplog.text


async def test_forwards_a_stop_cut_short_are_resumed_by_a_later_message_if_the_first_read_failed(
        tmp_path, pg_cluster, caplog):
    """The first message after a restart reads the forward commands a stop cut short; if that
    read fails (here: a right missing until the GRANT), a later message reads them again."""
    import asyncio
    import json
    import shlex
    import sys

    from modempool.operator.forwarding import drain, make_forward_handler

    out = tmp_path / "seen.txt"
    script = tmp_path / "hook.py"
    script.write_text("import json, sys\n"
                      f"open({str(out)!r}, 'a', encoding='utf-8')"
                      ".write(json.load(sys.stdin)['text'] + '\\n')\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    owner, weak, role = role_without(pg_cluster, "SELECT", "forward_log")
    with Spool(owner) as spool:   # the last daemon's run: its command for this SMS failed
        before = spool.store_inbound("13800138000", "before the stop", sim="m1")
        spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, "
                         "created_at) VALUES (?, ?, 1, 'failed', 'x')", [before.id, command])
    path = tmp_path / "modempool.toml"
    path.write_text(f"[spool]\nurl = {weak!r}\n[forward]\ncommand = {json.dumps(command)}\n",
                    "utf-8")
    config = load_config(path)
    handle = make_forward_handler(config)   # a new daemon process
    with config.open_spool() as spool, caplog.at_level(logging.INFO, logger="modempool"):
        first = await handle(spool, spool.store_inbound("13900139000", "first", sim="m1"))
        assert len(first) == 1
        assert "could not read the run_on_receive commands a stop cut short" in caplog.text
        with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {owner.rsplit('%3D', 1)[1]} "
                         f"TO {role}")
        assert await first[0]   # its outcome recorded once the right is there
        second = await handle(spool, spool.store_inbound("13900139000", "second", sim="m1"))
        assert len(second) == 2 and all(await asyncio.gather(*second))
        third = await handle(spool, spool.store_inbound("13900139000", "third", sim="m1"))
        assert len(third) == 1 and await third[0]
        await drain(timeout=30)
    assert sorted(out.read_text("utf-8").splitlines()) == ["before the stop", "first", "second",
                                                          "third"]
    assert "Traceback" not in caplog.text


async def test_a_modems_record_refused_a_right_waits_for_the_grant_then_is_written(
        tmp_path, pg_cluster, caplog):
    """The network refuses an SMS (+CMS ERROR 500); writing that outcome (what the modem
    decided: never to be lost) is refused a right the role lacks (INSERT on events). The
    modem waits for the GRANT as it waits out an outage (one ERROR line naming it), not going
    down as if the modem had failed; once the GRANT is run, the requeue is written and the
    message goes out on the next try."""
    import asyncio
    from pathlib import Path

    from modempool.config import parse_config
    from modempool.dispatch.daemon import Daemon
    from modempool.spool import unavailable
    from modempool.spool.unavailable import RepeatedLines
    from simulator import SimulatedBank
    from tests.modempool.daemon_harness import eventually

    owner, weak, role = role_without(pg_cluster, "INSERT", "events")
    with Spool(owner) as spool:
        [message_id] = spool.enqueue_many([{"to": "+8613800138000", "text": "退订请回复TD"}])
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=4) as bank:
        bank.set_fault("m1", "cms_error", code=500, count=1)
        config = parse_config(f"[spool]\nurl = {weak!r}\n[retry]\nbackoff = 1.0\n[[modem]]\n"
                              f'name = "m1"\nport = "{bank.devices[0]}"\n', tmp_path / "p.toml")
        daemon = Daemon(config, install_signals=False)
        # its line said a moment ago where the test runs: the daemon's run says it again
        # (Daemon.run's own limiter of repeated lines), not held back here for an hour
        said_here = RepeatedLines(3600.0)
        said_here.due(("modempool.dispatch.dispatcher", "record_error is refused by the database"))
        outside = unavailable._LINES.set(said_here)
        with caplog.at_level(logging.INFO, logger="modempool"):
            # each try of the retry loop says so at DEBUG (its ERROR line only once a minute)
            caplog.set_level(logging.DEBUG, logger="modempool.dispatch.dispatcher")
            running = asyncio.create_task(daemon.run())
            unavailable._LINES.reset(outside)
            try:
                await eventually(lambda: "record_error is refused by the database" in caplog.text,
                                 what="the modem's record waits for the GRANT")
                # refused again after its first wait (WAIT_FIRST): the retry loop keeps it
                await eventually(lambda: "record_error failed again" in caplog.text,
                                 what="a second try refused")
                with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
                    conn.execute(f"GRANT INSERT ON ALL TABLES IN SCHEMA "
                                 f"{owner.rsplit('%3D', 1)[1]} TO {role}")
                with Spool(owner) as spool:
                    await eventually(lambda: spool.get(message_id).state.value == "sent",
                                     what="sent once the GRANT was run")
            finally:
                daemon.stop()
                async with asyncio.timeout(60):
                    await running
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(r.exc_info is None and "\n" not in r.getMessage()
                          and f"the role '{role}' may not write table events: GRANT"
                          in r.getMessage() for r in errors), caplog.text
    # once each: the SIM's state, the modem's record (held back while it waits)
    assert len(errors) == len({r.getMessage() for r in errors}) <= 2, caplog.text
    assert "down (" not in caplog.text and "Traceback" not in caplog.text, caplog.text


async def test_a_right_missing_at_the_record_and_marker_waits_for_the_grant(
        tmp_path, pg_cluster, caplog):
    """The first message goes out (its marker alone needs no event); its record, committed
    with the next message's marker, is refused a right the role lacks (INSERT on events).
    The modem waits for the GRANT, the port open: the next part is not written meanwhile (its
    marker is not committed), one ERROR line names the GRANT, and nothing goes down; once the
    GRANT is run, the record and the marker commit and the second message goes out, once."""
    from modempool.config import parse_config
    from modempool.dispatch.daemon import Daemon
    from simulator import SimulatedBank
    from tests.modempool.daemon_harness import eventually, network_messages

    owner, weak, role = role_without(pg_cluster, "INSERT", "events")
    with Spool(owner) as spool:
        first, second = spool.enqueue_many([{"to": "+8613800138000", "text": "第一条"},
                                            {"to": "+8613800138000", "text": "第二条"}])
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=4) as bank:
        bank.set_fault("m1", "no_status_report")   # no report settles the first meanwhile
        config = parse_config(f"[spool]\nurl = {weak!r}\n[[modem]]\nname = \"m1\"\n"
                              f"port = \"{bank.devices[0]}\"\n", tmp_path / "p.toml")
        daemon = Daemon(config, install_signals=False)
        with caplog.at_level(logging.INFO, logger="modempool"):
            running = asyncio.create_task(daemon.run())
            try:
                await eventually(lambda: f"message {second} part 1/1 is refused by the database"
                                 in caplog.text, what="the second part waits for the GRANT")
                assert [e["text"] for e in network_messages(bank)] == ["第一条"]
                with Spool(owner) as spool:
                    assert spool.get(first).state.value == "sending"   # its record waits
                    assert spool.parts(second) == []                   # no marker: not written
                with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
                    conn.execute(f"GRANT INSERT ON ALL TABLES IN SCHEMA "
                                 f"{owner.rsplit('%3D', 1)[1]} TO {role}")
                with Spool(owner) as spool:
                    await eventually(lambda: [spool.get(i).state.value for i in (first, second)]
                                     == ["sent", "sent"], what="both sent once granted")
            finally:
                daemon.stop()
                async with asyncio.timeout(60):
                    await running
    assert [e["text"] for e in network_messages(bank)] == ["第一条", "第二条"]   # each once
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"message {second} part 1/1 is refused by the database" in r.getMessage()
               for r in errors), caplog.text
    assert errors and all(r.exc_info is None and "\n" not in r.getMessage()
                          and f"the role '{role}' may not write table events: GRANT"
                          in r.getMessage() for r in errors), caplog.text
    assert "down (" not in caplog.text and "Traceback" not in caplog.text, caplog.text
