"""A forward command cut short before the upgrade to schema 15 (no mark in `inbound_hooks`)
is run again by no daemon (audit20 L1); rev21b L1: it was shown nowhere either. Now
`modempool status` says how many there are, `modempool forward leftovers` lists them and
`--give-up` records them as dealt with, through `modempool.Pool`; real CLI subprocesses on
each engine. Giving up names the ids (or --all) and says which were no leftover (rev22a R4)."""

from __future__ import annotations

import json

from modempool import Pool
from modempool.operator.db import ensure_schema, now_iso
from modempool.operator.forward_leftovers import leftovers
from modempool.operator.forwarding import SCHEMA, command_target
from modempool.spool import Spool
from tests.modempool.daemon_harness import modempool_cli

COMMAND = "/usr/local/bin/on-sms --db sms"
SENDER = "+8613800138000"


def _log(spool: Spool, inbound_id: int, target: str, *outcomes: str) -> None:
    for attempt, outcome in enumerate(outcomes, 1):
        spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, detail, "
                         "created_at) VALUES (?, ?, ?, ?, '', ?)",
                         [inbound_id, target, attempt, outcome, now_iso()])


def test_a_forward_command_cut_short_with_no_mark_is_listed_and_can_be_given_up(
        tmp_path, spool_setting, spool_target):
    config = tmp_path / "modempool.toml"
    config.write_text(f'[spool]\n{spool_setting}\n[forward]\ncommand = "{COMMAND}"\n', "utf-8")
    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        cut = spool.store_inbound(SENDER, "cut short before 15", sim="m1")
        _log(spool, cut.id, COMMAND, "failed")                 # the line, as 14 wrote it
        done = spool.store_inbound(SENDER, "retried to success", sim="m1")
        _log(spool, done.id, command_target(COMMAND), "failed", "ok")
        running = spool.store_inbound(SENDER, "its daemon retries it", sim="m1",
                                      hooks_by="box:7:place-run")
        _log(spool, running.id, command_target(COMMAND), "failed")
        refused = spool.store_inbound(SENDER, "a number's forward refused", sim="m1")
        _log(spool, refused.id, "+8613900139000", "failed")
        spent = spool.store_inbound(SENDER, "its retries used up", sim="m1")
        _log(spool, spent.id, command_target(COMMAND), "failed", "failed", "gave-up")

    listed = modempool_cli("forward", "leftovers", "--json", config=config)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["text"], row["attempts"]) == (cut.id, "cut short before 15", 1)
    status = modempool_cli("status", config=config)
    assert status.returncode == 0, status.stderr
    assert ("forward command cut short with no mark for 1 received SMS (before the upgrade to "
            "schema 15, or a retry killed): run by nothing; see `modempool forward leftovers` "
            "(--retry, --give-up)") in status.stdout
    _give_up_names_what_it_did_not(config, cut.id, running.id)
    with Pool.open(config) as pool:
        assert pool.forward_leftovers() == []


def _give_up_names_what_it_did_not(config, cut: int, running: int) -> None:
    """rev22a R4: ids that are no leftover were ignored silently (rc 0, 'gave up ... of 0'),
    and `--give-up` with no ids gave up every leftover. Now no ids (nor --all) is refused,
    the ids not given up are named, and none given up exits 1; one line each."""
    slip = modempool_cli("forward", "leftovers", "--give-up", config=config)
    assert slip.returncode == 1 and slip.stdout == ""
    assert slip.stderr.strip().splitlines() == [
        "Error: name the received SMS to give up the forward command of (their ids, as "
        "`modempool forward leftovers` lists them), or all of them with --all"]
    none = modempool_cli("forward", "leftovers", "--give-up", str(running), "999999",
                         config=config)
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr.strip().splitlines() == [
        f"Error: no forward command cut short for received SMS {running}, 999999 (its command "
        "pending in a daemon, done, or no such SMS): nothing given up"]
    with Pool.open(config) as pool:
        assert [row.id for row in pool.forward_leftovers()] == [cut]
    given = modempool_cli("forward", "leftovers", "--give-up", str(cut), "999999",
                          config=config)
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == (
        f"gave up the forward command of 1 received SMS: {cut}; no forward command cut short "
        "for received SMS 999999 (its command pending in a daemon, done, or no such SMS)")
    every = modempool_cli("forward", "leftovers", "--give-up", "--all", "--json", config=config)
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout) == {"given_up": [], "not_leftovers": []}


def test_the_look_reads_the_index_of_the_commands_failed_attempts(spool_target):
    """rev22a R6: the look scanned the whole of `forward_log` (71 to 83 ms at 1M rows on
    SQLite, paid by every CLI `status`). It now reads the partial index of the command's
    failed attempts and retry claims, its condition repeated word for word: on each engine
    the plan of the very statement it runs names that index (PostgreSQL told to avoid a
    sequential scan, which it prefers on a table this small)."""
    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        cut = spool.store_inbound(SENDER, "cut short", sim="m1")
        _log(spool, cut.id, command_target(COMMAND), "failed")
        asked: list[tuple[str, list]] = []
        run = spool.reports._all
        spool.reports._all = lambda sql, params=(): asked.append((sql, list(params))) or run(
            sql, params)
        assert [row.id for row in leftovers(spool)] == [cut.id]
        [(sql, params)] = asked
        if spool.engine.name == "postgresql":
            with spool.engine.tx() as conn:
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in conn.execute("EXPLAIN " + sql, params).fetchall()]
        else:
            plan = [row[3] for row in spool.engine.rows("EXPLAIN QUERY PLAN " + sql, params)]
    assert any("forward_log_command_unfinished" in line for line in plan), plan
