"""A live daemon is never judged dead because the judge's /proc shows its start otherwise
(review rev20a M3, M4): a judge in another time namespace (/proc/<pid>/stat's start is shifted
by the reader's boot-time offset), a /proc of another pid namespace (where the daemon's pid is
another process). Real processes, real /proc, unshare(1) (root)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from modempool.box.ports import process_start
from modempool.spool.daemons import Here, judge, this_place

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_TIME_NAMESPACE = ["unshare", "--time", "--boottime", "100000", "--fork"]


def _can(prefix: list[str]) -> bool:
    try:
        return subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except OSError:
        return False


def _judged_in(prefix: list[str], row: dict, place: str) -> dict:
    """`judge(row)` run in a process started under `prefix`, as if in `place` (the daemon's),
    its heartbeat still moving: the verdict, that process's own place and the start it reads."""
    code = textwrap.dedent(f"""
        import json, socket, sys
        sys.path.insert(0, {ROOT!r})
        from modempool.box.ports import process_exists, process_start
        from modempool.spool.daemons import Here, judge, this_place
        row = json.loads(sys.argv[1])
        verdict = judge(row, here=Here(socket.gethostname(), sys.argv[2]),
                        alive=process_exists, silent=lambda r: False)
        print(json.dumps({{"alive": verdict.alive, "reason": verdict.reason,
                          "place": this_place(), "read": process_start(row["pid"])}}))""")
    out = subprocess.run([*prefix, sys.executable, "-c", code, json.dumps(row), place],
                         capture_output=True, check=True, text=True).stdout
    return json.loads(out)


@pytest.fixture
def live_daemon_row():
    """The `daemons` row of a live process (a `sleep`), with its start as it records it."""
    live = subprocess.Popen(["sleep", "600"])
    place = this_place()
    yield {"owner": f"{socket.gethostname()}:{live.pid}:{place}-000001",
           "host": socket.gethostname(), "pid": live.pid, "process_start": process_start(live.pid),
           "started_at": None, "heartbeat_at": None, "stopped_at": None}
    live.kill()
    live.wait()


@pytest.mark.skipif(not _can(IN_TIME_NAMESPACE), reason="no time namespaces here (Linux 5.6+, root)")
def test_a_live_daemon_judged_from_another_time_namespace_stays_alive(live_daemon_row):
    """The judge reads another start for the live process (shifted by its offset): that alone
    no longer calls it dead while it beats (the old code: 'killed'), and the time namespace is
    part of the place, so such a judge asks the heartbeat in the first place (the old place was
    the same)."""
    place = this_place()
    assert judge(live_daemon_row, here=Here(socket.gethostname(), place),
                 alive=lambda pid: True, silent=lambda row: False).alive
    seen = _judged_in(IN_TIME_NAMESPACE, live_daemon_row, place)
    assert seen["read"] != live_daemon_row["process_start"]   # what misled the old rule
    assert (seen["alive"], seen["reason"]) == (True, ""), seen
    assert seen["place"] != place


@pytest.mark.skipif(not _can(["unshare", "--pid", "--fork"]), reason="no unshare --pid (root)")
def test_a_proc_of_another_pid_namespace_gives_no_start():
    """unshare --pid --fork without --mount-proc: the daemon's own pid (1 there) in a /proc of
    the parent namespace is another process. What a daemon records of itself is its own start
    or none (pid alone, as before starts were kept), never that process's (the old code)."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {ROOT!r})
        from modempool.box.ports import process_start
        own = int(open('/proc/self/stat', 'rb').read().rsplit(b')', 1)[1].split()[19])
        print(os.getpid(), process_start(os.getpid()), own)""")
    out = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", code],
                         capture_output=True, check=True, text=True).stdout.split()
    pid, recorded, own = out[0], out[1], int(out[2])
    assert pid == "1"
    assert recorded in ("None", str(own)), out
    assert process_start(os.getpid()) is not None   # this /proc is this namespace's: read
