"""`modempool forward leftovers --retry`: a forward command cut short with no mark is run
again by the operator, once, as the daemon would run it today (the SMS's JSON and variables,
the clean environment, the masked stderr), through `modempool.Pool`; two retries at once
(two processes, one of them judged as on another box) never run one leftover twice, and a
retry killed while its command runs is listed again. Real CLI subprocesses on each engine;
on the code before, `--retry` did not exist."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from modempool import Pool
from modempool.operator.db import ensure_schema, now_iso
from modempool.operator.forward_leftovers import RETRY_GRACE, leftovers
from modempool.operator.forwarding import SCHEMA, command_target
from modempool.spool import Spool
from modempool.spool.model import utcnow
from tests.modempool.daemon_harness import REPO, eventually, modempool_cli

SENDER = "+8613800138000"
TOKEN = "s3cr3t-token-value"
#: The forward command: logs what it got (stdin's JSON, its SMS_/MODEMPOOL_ variables, and
#: whether the CLI's CLOUD_KEY reached it), then fails on "fail...", blocks on "hang..." (a
#: FIFO nobody writes), exits 0 otherwise.
SCRIPT = """\
import json, os, sys
data = json.load(sys.stdin)
seen = {k: v for k, v in os.environ.items() if k.startswith(("SMS_", "MODEMPOOL_"))}
with open(sys.argv[1], "a", encoding="utf-8") as log:
    log.write(json.dumps({"stdin": data, "env": seen, "pid": os.getpid(),
                          "cloud_key": "CLOUD_KEY" in os.environ}) + "\\n")
if data["text"].startswith("fail"):
    print("refused with --token=" + sys.argv[2], file=sys.stderr)
    sys.exit(3)
if data["text"].startswith("hang"):
    open(sys.argv[3]).read()
"""


def _setup(tmp_path: Path, spool_setting: str, timeout: int = 10) -> tuple[Path, Path, str]:
    """The config (its command the logging script), the script's log, and the command."""
    script, log, fifo = tmp_path / "on_sms.py", tmp_path / "runs.jsonl", tmp_path / "never"
    script.write_text(SCRIPT, "utf-8")
    os.mkfifo(fifo)
    command = f"{sys.executable} {script} {log} {TOKEN} {fifo}"
    config = tmp_path / "modempool.toml"
    config.write_text(f"[spool]\n{spool_setting}\n[forward]\ncommand = '{command}'\n"
                      f"timeout = {timeout}\n", "utf-8")
    return config, log, command


def _leftover(spool: Spool, text: str, target: str, attempts: int = 1) -> int:
    """A received SMS whose command failed `attempts` times and was cut short (no mark)."""
    stored = spool.store_inbound(SENDER, text, sim="m1")
    for attempt in range(1, attempts + 1):
        spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, detail,"
                         " created_at) VALUES (?, ?, ?, 'failed', '', ?)",
                         [stored.id, target, attempt, now_iso()])
    return stored.id


def _runs(log: Path) -> list[dict]:
    return ([json.loads(line) for line in log.read_text("utf-8").splitlines()]
            if log.exists() else [])


def _ids(log: Path) -> list[int]:
    """The SMS ids the command ran for, once per run."""
    return [run["stdin"]["id"] for run in _runs(log)]


def _cli(*args: str, config: Path, place: str | None = None) -> subprocess.Popen:
    """`modempool ARGS` (a group, its command, then their arguments) started in the
    background, its CLOUD_KEY a secret the command must
    not get; `place`: as if on another box (`MODEMPOOL_PLACE`)."""
    env = {**os.environ, "CLOUD_KEY": "cloud-secret-value"}
    if place is not None:
        env["MODEMPOOL_PLACE"] = place
    return subprocess.Popen([sys.executable, "-m", "cli", *args[:2], "--config", str(config),
                             *args[2:]],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_retry_runs_todays_command_once_as_the_daemon_would(tmp_path, spool_setting,
                                                              spool_target):
    config, log, command = _setup(tmp_path, spool_setting)
    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        done = _leftover(spool, "ok please", "/usr/local/bin/old-line")   # as 14 wrote it
        failing = _leftover(spool, "fail again", command_target(command), attempts=2)
        running = spool.store_inbound(SENDER, "its daemon retries it", sim="m1",
                                      hooks_by="box:7:place-run")
        never = _leftover(spool, "never asked", command_target(command))
    huge = str(10 ** 30)
    retried = _cli("forward", "leftovers", "--retry", str(done), str(failing), str(running.id),
                   huge, "--", "-5", config=config)
    stdout, stderr = retried.communicate(timeout=120)
    assert retried.returncode == 1, stderr     # one of them failed
    assert stderr == ""
    assert stdout.strip() == (
        f"ran the forward command again for 2 received SMS: {done} exited 0; failed, listed "
        f"again: {failing} (exit status 3: refused with --token=****); no forward command cut "
        f"short for received SMS -5, {running.id}, {huge} (its command pending in a daemon, "
        "done, or no such SMS)")
    runs = {run["stdin"]["id"]: run for run in _runs(log)}
    assert sorted(runs) == sorted([done, failing])
    ok = runs[done]
    assert {key: ok["stdin"][key] for key in ("id", "sender", "sim", "text")} == {
        "id": done, "sender": SENDER, "sim": "m1", "text": "ok please"}
    assert ok["stdin"]["received_at"] and ok["stdin"]["groups"] == []
    assert ok["env"] == {"SMS_MESSAGES": "1", "SMS_1_NUMBER": SENDER, "SMS_1_TEXT": "ok please",
                         "MODEMPOOL_SIM": "m1", "MODEMPOOL_INBOUND_ID": str(done)}
    assert not ok["cloud_key"] and not runs[failing]["cloud_key"]
    with Pool.open(config) as pool:
        listed = {row.id: row for row in pool.forward_leftovers()}
        assert sorted(listed) == sorted([failing, never])   # the one not asked stays
        assert (listed[failing].attempts, listed[failing].retry_cut_short) == (3, False)
        rows = pool.spool.db.execute(
            "SELECT inbound_id, target, attempt, outcome, detail FROM forward_log "
            "WHERE inbound_id IN (?, ?) ORDER BY id", [done, failing]).fetchall()
    target = command_target(command)
    assert [tuple(row)[1:4] for row in rows if row[0] == done] == [
        ("/usr/local/bin/old-line", 1, "failed"), (target, 2, "retrying"), (target, 2, "ok")]
    assert [tuple(row)[1:4] for row in rows if row[0] == failing] == [
        (target, 1, "failed"), (target, 2, "failed"), (target, 3, "retrying"),
        (target, 3, "failed")]
    details = {(row[0], row[3]): row[4] for row in rows}
    assert details[(done, "ok")] == "exit status 0"
    assert details[(failing, "failed")].endswith("refused with --token=****")
    assert TOKEN not in " ".join(str(row[4]) for row in rows)
    assert details[(done, "retrying")].startswith("retry running in ")


def _wait_for_run(log: Path, inbound_id: int, holder: subprocess.Popen) -> dict:
    """The log's run of `inbound_id` once its command started (the retry's process must not
    end first: on the code before, `--retry` was refused at once)."""
    def started() -> dict | None:
        if holder.poll() is not None:
            raise AssertionError(f"the retry ended ({holder.returncode}): "
                                 f"{holder.communicate()}")
        return next((run for run in _runs(log) if run["stdin"]["id"] == inbound_id), None)
    return asyncio.run(eventually(started, what="the retried command started"))


def test_two_retries_at_once_run_each_leftover_once_and_a_killed_one_is_listed_again(
        tmp_path, spool_setting, spool_target, monkeypatch):
    config, log, command = _setup(tmp_path, spool_setting, timeout=600)
    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        hung = _leftover(spool, "hang until killed", command_target(command))
        quick = [_leftover(spool, f"ok {n}", command_target(command)) for n in range(4)]
    holder = _cli("forward", "leftovers", "--retry", str(hung), config=config)
    started = [holder]
    try:
        _wait_for_run(log, hung, holder)
        # two retries of everything at once, one of them as on another box: each leftover
        # runs once, and not the one whose retry runs (here, or by its claim's age elsewhere)
        here, elsewhere = (_cli("forward", "leftovers", "--retry", "--all", "--json",
                                config=config, place=place) for place in (None, "another box"))
        started += [here, elsewhere]
        asyncio.run(eventually(lambda: here.poll() is not None and elsewhere.poll() is not None
                               or _ids(log).count(hung) > 1, what="both retries ended"))
        assert _ids(log).count(hung) == 1, "a second retry ran the one running"
        results = [json.loads(p.communicate()[0]) for p in (here, elsewhere)]
        assert (here.returncode, elsewhere.returncode) == (0, 0)
        assert sorted(results[0]["ok"] + results[1]["ok"]) == quick
        assert [result["failed"] for result in results] == [[], []]
        assert sorted(_ids(log)) == sorted([hung, *quick])   # each once
        again = modempool_cli("forward", "leftovers", "--retry", str(hung), config=config)
        assert again.returncode == 1 and again.stdout == ""
        assert again.stderr.strip().splitlines() == [
            f"Error: no forward command cut short for received SMS {hung} (its command pending "
            "in a daemon, done, or no such SMS): nothing run"]
        with Pool.open(config) as pool:
            assert pool.forward_leftovers() == []
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.communicate()
        for run in _runs(log):   # the hung command, orphaned by the kill (blocked: its pid)
            if run["stdin"]["id"] == hung:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run["pid"], signal.SIGKILL)
    with Pool.open(config) as pool:
        [listed] = pool.forward_leftovers()    # its process gone from this process table
        assert (listed.id, listed.attempts, listed.retry_cut_short) == (hung, 2, True)
        monkeypatch.setenv("MODEMPOOL_PLACE", "another box")   # elsewhere: by the claim's age
        assert leftovers(pool.spool) == []
        later = utcnow() + timedelta(seconds=600 + RETRY_GRACE + 1)
        assert [row.id for row in leftovers(pool.spool, now=later)] == [hung]
        monkeypatch.delenv("MODEMPOOL_PLACE")
        assert pool.give_up_forward_leftovers([hung]).given == [hung]
        assert pool.forward_leftovers() == []


def test_a_claim_from_a_box_whose_clock_is_behind_is_not_out_of_time_at_once(
        spool_target, monkeypatch):
    """rev24 F3: a claim was written with the claiming box's clock and judged, on another
    box, with that box's: box A 75 s behind B (a claim "for at most 70 s") was out of time on
    B the moment A wrote it, and B's `--retry` ran A's running command again. Both now read
    the database's clock; the boxes' own clocks (each skewed here) are not compared."""
    import modempool.operator.forward_leftovers as forward_leftovers
    import modempool.operator.forward_retry as forward_retry
    from modempool.operator.db import now_iso as true_now_iso
    from modempool.operator.forward_retry import claim

    with Spool(spool_target) as spool:
        ensure_schema(spool.db, SCHEMA)
        stored = _leftover(spool, "forward me", "command sha256:0123456789abcdef")
        monkeypatch.setenv("MODEMPOOL_PLACE", "box a")
        monkeypatch.setattr(forward_retry, "now_iso", lambda moment=None: true_now_iso(
            moment or utcnow() - timedelta(seconds=75)))          # box A's clock
        assert claim(spool, stored, "command sha256:0123456789abcdef",
                     forward_leftovers.retry_claim(10)) is not None
        monkeypatch.setenv("MODEMPOOL_PLACE", "box b")
        monkeypatch.setattr(forward_leftovers, "utcnow", utcnow, raising=False)   # B's: true
        assert leftovers(spool) == [], "B would run A's running command a second time"
        later = utcnow() + timedelta(seconds=10 + RETRY_GRACE + 5)
        assert [row.id for row in leftovers(spool, now=later)] == [stored]
