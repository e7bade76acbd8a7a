"""A dead daemon's pid given again to another process does not keep its leases and SIM cards
held (schema step 17: the `daemons` row keeps when the daemon's process started, beside its pid).

After a kill -9 the kernel may give the pid to any new process; judged by the pid alone, the dead
daemon looked alive for as long as that process lived. The tests use real processes: on the
spool, a daemon row naming a live process with another start; with real daemons on a real
PostgreSQL cluster, the killed daemon's very pid given again (`/proc/sys/kernel/ns_last_pid`,
where this process may write it; else the row's pid pointed at another live process, which is
what the judging daemon then sees either way).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from modempool.box.ports import process_exists, process_start
from modempool.dispatch.liveness import here
from modempool.spool import Spool
from modempool.spool.daemons import judge, run_owner, this_place
from modempool.spool.model import utcnow
from modempool.spool.recovery import judged_dead
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers
from tests.modempool.spool_driver import (before_process_start, claim_next, schema_version,
                                          set_schema_version)
from tests.modempool.test_card_holders import _parts, banks_sharing_a_card

pytestmark = pytest.mark.timeout(300)

CARD = "89860012345678901234"
WAITS = "import sys; sys.stdin.read()"   # a process that lives until its stdin closes


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


@pytest.fixture
def other_process():
    """A live process that is not a daemon (ends with the test)."""
    child = subprocess.Popen([sys.executable, "-c", WAITS], stdin=subprocess.PIPE)
    yield child
    child.stdin.close()
    child.wait()


def _never_silent(row) -> bool:
    return False


def _always_silent(row) -> bool:
    return True


def _judged(spool: Spool, owner: str, silent=_never_silent) -> bool:
    """Whether the daemon run `owner` is alive, by the rule that settles leases."""
    return not judged_dead(spool.engine, [owner], here=here(), alive=process_exists,
                           silent=silent)


def test_a_pid_that_names_another_process_now_is_a_dead_daemons(spool_target, other_process):
    """The row's pid is a live process that started at another moment than the row says (the
    start of this test's own process, a real one): once its heartbeat is silent the daemon is
    dead, its run-out lease is settled and its card taken; while it beats it is alive (a start
    that differs is no proof by itself: rev20a M3, M4). With the process's own start it is
    alive, silent or not; with none (a row from before step 17) it is judged by its pid alone,
    as before."""
    pid = other_process.pid
    assert process_start(pid) != process_start(os.getpid())
    dead, itself, unknown = (run_owner(socket.gethostname(), pid, this_place(), run)
                             for run in ("000001", "000002", "000003"))
    now = utcnow()
    with Spool(spool_target) as spool:
        for owner, started in ((dead, process_start(os.getpid())),
                               (itself, process_start(pid)), (unknown, None)):
            spool.beat(owner, host=socket.gethostname(), pid=pid, started_at=now,
                       process_started=started)
        assert [_judged(spool, o) for o in (dead, itself, unknown)] == [True, True, True]
        assert [_judged(spool, o, _always_silent)
                for o in (dead, itself, unknown)] == [False, True, True]
        row = next(r for r in spool.daemons() if r["owner"] == dead)
        verdict = judge(row, here=here(), alive=process_exists, silent=_always_silent)
        assert (verdict.alive, verdict.reason) == (False, "killed")

        for owner, sim in ((dead, "m1"), (itself, "m2")):
            message = spool.enqueue("+8613800138000", f"leased by {sim}", sims=[sim])
            assert claim_next(spool, sim, f"{owner}/{sim}", lease_seconds=1,
                              now=now).id == message.id
        later = now + timedelta(seconds=5)   # both leases run out
        recovery = spool.recover_dead_owners(here=here(), alive=process_exists,
                                             silent=_never_silent, now=later)
        assert recovery.requeued == ()   # still beating: alive, whatever its start
        recovery = spool.recover_dead_owners(here=here(), alive=process_exists,
                                             silent=_always_silent, now=later)
        assert len(recovery.requeued) == 1
        assert {m.text: m.state.value for m in spool.list()} == {
            "leased by m1": "queued", "leased by m2": "sending"}

        def dead_by_rule(owner: str) -> bool:
            return not _judged(spool, owner, _always_silent)

        holders = spool.card_holders
        assert holders.take(CARD, dead, "a1", dead_by_rule) is None
        assert holders.take(CARD, itself, "b1", dead_by_rule) is None   # taken from the dead
        assert holders.take(CARD, unknown, "c1", dead_by_rule).owner == itself


def test_a_version_16_spool_gets_the_column_and_its_rows_are_judged_by_pid(spool_target,
                                                                         other_process):
    """Schema step 17 on a version 16 spool (both engines): its rows have no start and are
    judged as before (the live pid: alive); a beat after it records the start."""
    from modempool.spool.schema import SCHEMA_VERSION

    owner = run_owner(socket.gethostname(), other_process.pid, this_place(), "000016")
    with Spool(spool_target) as spool:
        with spool.engine.tx() as conn:
            before_process_start(conn)
            conn.execute("INSERT INTO daemons (owner, host, pid, started_at, heartbeat_at) "
                         "VALUES (?, ?, ?, '2026-12-07T05:00:00.000Z', "
                         "'2026-12-07T05:00:00.000Z')",
                         (owner, socket.gethostname(), other_process.pid))
            set_schema_version(spool, conn, 16)
    # the row is a live older daemon's: step 20 refuses to upgrade under it unless told to
    with Spool(spool_target, despite_older_daemons=True) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 17
        [row] = spool.daemons()
        assert row["process_start"] is None
        assert _judged(spool, owner)
        mine = run_owner(socket.gethostname(), os.getpid(), this_place(), "000017")
        spool.beat(mine, host=socket.gethostname(), pid=os.getpid(), started_at=utcnow(),
                   process_started=process_start(os.getpid()))
        assert {r["owner"]: r["process_start"] for r in spool.daemons()}[mine] == process_start(
            os.getpid())
        assert _judged(spool, mine)


def _given_again(pid: int) -> subprocess.Popen | None:
    """A new process with `pid` (free again after a kill), by setting the pid namespace's last
    pid just before it; None where this process may not (not root) or others keep taking it."""
    for _ in range(50):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w", encoding="ascii") as last:
                last.write(str(pid - 1))
        except OSError:
            return None
        child = subprocess.Popen([sys.executable, "-c", WAITS], stdin=subprocess.PIPE)
        if child.pid == pid:
            return child
        child.stdin.close()
        child.wait()
    return None


async def test_a_killed_daemons_pid_given_again_leaves_its_lease_and_card_to_the_survivor(
        tmp_path, pg_cluster):
    """Two daemons on a real cluster, bank b's first modem with a clone of bank a's card.
    Daemon a is killed with SIGKILL while it writes a part (600 s on the air); its pid goes to
    a new process, which lives on. Once a's heartbeat has been silent a whole window, daemon b
    settles a's lease (the part may be out: ambiguous) and takes the card over: b1 sends the
    rest. Judged by pid alone, a looked alive for as long
    as that process lived, and b1 stood by for good."""
    url = pg_cluster.new_schema()
    async with banks_sharing_a_card(tmp_path, url, modems_b=1, per_day=None,
                                    seed=41) as (bank_a, bank_b, config_a, config_b, card):
        bank_a.set_fault("m1", "sms_latency", seconds=600.0)   # on the air at the kill
        with Spool(url) as spool:
            first = await DaemonProcess(config_a).start()
            second = await DaemonProcess(config_b).start()
            spool.enqueue_many({"to": "+8613800138000", "text": f"card {i}",
                                "sims": ["a1", "b1"]} for i in range(4))
            await eventually(lambda: spool.rows(
                "SELECT id FROM parts WHERE sim = 'a1' AND state = 'writing'"),
                what="a1 writing a part (its marker committed)")
            await second.wait_for_log(f"b1: sends nothing: its SIM card {card} is served "
                                      "by another live daemon")
            pid = first.proc.pid
            await first.kill()
            reused = _given_again(pid)
            if reused is None:   # the row's pid at another live process instead
                reused = subprocess.Popen([sys.executable, "-c", WAITS],
                                          stdin=subprocess.PIPE)
                with spool.engine.tx() as conn:
                    conn.execute("UPDATE daemons SET pid = ? WHERE pid = ?",
                                 (reused.pid, pid))
            try:
                await eventually(lambda: spool.counts()["ambiguous"] == 1, timeout=60,
                                 what="a's lease settled by b")
                await eventually(lambda: len(_parts(bank_b, "m1")) == 3, timeout=60,
                                 what="b1 sending the rest on the card taken over")
                await eventually(lambda: spool.counts()["sending"] == 0, what="b1 done")
                assert process_exists(reused.pid)   # the pid named a live process throughout
            finally:
                reused.stdin.close()
                reused.wait()
            assert await second.stop() == 0
            events = [e for e in spool.events() if e["kind"] == "sim-card-taken-over"]
    assert _parts(bank_a, "m1") == []   # still on the air when a was killed
    assert [e["sim"] for e in events] == ["b1"]


def test_process_start_reads_the_kernels_field_past_a_command_with_spaces_and_parens(
        tmp_path: Path) -> None:
    """`/proc/<pid>/stat`'s command may hold ') ' itself: the start is counted from the last ')'."""
    stat = tmp_path / "4242" / "stat"
    stat.parent.mkdir()
    (tmp_path / "self").symlink_to(str(os.getpid()))   # a /proc of this pid namespace
    fields = " ".join(str(n) for n in range(3, 53))   # fields 3 ... 52: field 22 reads "22"
    stat.write_text(f"4242 (a) b (c) {fields}\n", encoding="ascii")
    assert process_start(4242, proc=tmp_path) == 22
    assert process_start(4243, proc=tmp_path) is None


def test_a_pid_whose_start_cannot_be_read_now_is_judged_by_its_heartbeat(
        tmp_path: Path, other_process) -> None:
    """Under a /proc mounted `hidepid=2`, a killed daemon's pid given to another user's process
    answers `kill(pid, 0)` (EPERM: alive) while its /proc/<pid>/stat is hidden: its start
    cannot be read. The old rule took an unreadable start for "not another process", so the
    dead run stayed alive for as long as that process lived (audit21 L1); now it is judged by
    its heartbeat, as one whose start differs: dead once silent, alive while it beats; dead
    as "silent", not "killed": nothing shows its process gone, and it may be a live daemon of
    that user whose writes lag (rev21b L3). The hidden entry is a /proc of this pid namespace without the pid's directory (a real read
    that fails as hidepid makes it fail); the mount itself and a second user are not made."""
    hidden = tmp_path / "proc"
    hidden.mkdir()
    (hidden / "self").symlink_to(str(os.getpid()))

    def started(pid: int) -> int | None:
        return process_start(pid, proc=hidden)

    pid = other_process.pid
    assert started(pid) is None and process_exists(pid)
    row = {"owner": run_owner(socket.gethostname(), pid, this_place(), "000001"),
           "host": socket.gethostname(), "pid": pid, "process_start": process_start(pid),
           "started_at": None, "heartbeat_at": None, "stopped_at": None}
    silent = judge(row, here=here(), alive=process_exists, silent=_always_silent,
                   started=started)
    assert (silent.alive, silent.reason) == (False, "silent")
    assert judge(row, here=here(), alive=process_exists, silent=_never_silent,
                 started=started).alive
    assert judge({**row, "process_start": None}, here=here(), alive=process_exists,
                 silent=_always_silent, started=started).alive   # from before step 17: by pid
