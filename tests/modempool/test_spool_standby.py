"""A spool's URL that leads to a read-only standby alone (issue 18): `status`, `send` and
`run` each refuse in one line that names the host and says it is a standby, and what to point
the URL at instead; nothing is changed. A real streaming standby of the suite's cluster."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from modempool.spool import Spool
from tests.modempool.daemon_harness import modempool_cli
from tests.pg_cluster import server_program

pytestmark = pytest.mark.timeout(300)  # a hang guard


@contextmanager
def standby_of(cluster) -> Iterator[Path]:
    """A hot standby of `cluster`, streaming from it (pg_basebackup -R), listening on a Unix
    socket in its directory, which is yielded."""
    directory = Path(tempfile.mkdtemp(prefix="modempool-standby-"))
    shutil.copystat(cluster.directory, directory)
    shutil.chown(directory, cluster.user, cluster.user) if cluster.user else None

    def run(*argv: str) -> None:
        subprocess.run(argv, user=cluster.user, capture_output=True, text=True, check=True,
                       timeout=300, cwd=directory)

    try:
        run(server_program("pg_basebackup"), "-h", str(cluster.directory), "-U", "postgres",
            "-D", str(directory / "data"), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast")
        run(server_program("pg_ctl"), "-D", str(directory / "data"), "-l",
            str(directory / "server.log"), "-w", "-t", "300", "-o",
            f"-k {directory} -c listen_addresses='' -c fsync=off -c max_connections=200",
            "start")   # as many connections as the primary, or recovery stops
        yield directory
    finally:
        subprocess.run([server_program("pg_ctl"), "-D", str(directory / "data"), "-m",
                        "immediate", "-w", "stop"], user=cluster.user, capture_output=True,
                       timeout=300)
        shutil.rmtree(directory, ignore_errors=True)


def test_status_send_and_run_refuse_a_standby_naming_it(tmp_path, pg_cluster):
    primary = pg_cluster.new_schema()
    with Spool(primary) as spool:   # the spool made on the primary, then copied
        spool.enqueue("+8613800138000", "before the copy")
    with standby_of(pg_cluster) as socket:
        url = primary.replace(f"host={quote(str(pg_cluster.directory))}",
                              f"host={quote(str(socket))}")
        assert url != primary
        config = tmp_path / "standby.toml"
        config.write_text(f'[spool]\nurl = "{url}"\n\n[simulator]\nmodems = 1\n',
                          encoding="utf-8")
        results = {name: modempool_cli(*args, config=config) for name, args in (
            ("status", ("status",)), ("send", ("send", "+8613800138001", "hello")),
            ("run", ("run",)))}
    for name, result in results.items():
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (name, result.stderr)
        [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert f"the server at {socket}:5432 is a standby (read-only, in recovery)" in line, line
        assert "target_session_attrs=read-write" in line, line
        assert "try again in" not in line, line
    with Spool(primary) as spool:
        assert [m.text for m in spool.list()] == ["before the copy"]   # nothing queued
