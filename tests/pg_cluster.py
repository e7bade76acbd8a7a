"""A throwaway PostgreSQL cluster for the suite: `initdb` and `pg_ctl` in a temporary directory.

Debian's `postgresql` package puts the server programs in /usr/lib/postgresql/<version>/bin (not
on PATH). The server refuses to run as root, so when the suite runs as root (CI does) the
cluster belongs to the `postgres` user that the package creates. It listens on a Unix socket in
its own directory only (no TCP port to collide on), with fsync off: it is thrown away.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.log_handlers import handler_on
from tests.programs import require_program


def server_program(name: str) -> str:
    """The path of a PostgreSQL server program (`initdb`, `pg_ctl`), newest version first."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return candidates[-1]
    require_program("pg_ctlcluster")  # names the package to install
    raise AssertionError(f"{name} not found although postgresql is installed")


_TEMPLATE: Path | None = None   # this process's `initdb` output, copied for each cluster
_TEMPLATE_LOCK = threading.Lock()


def _server_user() -> str | None:
    """Who runs the server: the `postgres` user when we are root (the server refuses root)."""
    return None if os.geteuid() != 0 else "postgres"


def _own_directory(prefix: str, user: str | None) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


def _template() -> Path:
    """A data directory made by `initdb` once per process (about a second, more under load)
    and never started: each cluster starts from a copy of it (a tenth of that), removed at
    the process's exit."""
    global _TEMPLATE
    with _TEMPLATE_LOCK:
        if _TEMPLATE is None:
            user = _server_user()
            directory = _own_directory("modempool-pg-template-", user)
            atexit.register(shutil.rmtree, directory, True)
            _run([server_program("initdb"), "-D", str(directory / "data"), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C",
                  "--lc-ctype=C.UTF-8"], user, directory)   # Unicode: trigrams of Chinese text
            _TEMPLATE = directory / "data"
        return _TEMPLATE


def _run(argv: list[str], user: str | None, cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, user=user, capture_output=True, text=True, timeout=600,
                            cwd=cwd,   # a hang guard: initdb is slow under load
                            env=None if env is None else {**os.environ, **env})
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")


class PgCluster:
    """One cluster: `start()`, `url(schema)`, `stop()`, `remove()`."""

    def __init__(self) -> None:
        self.user = _server_user()
        self.directory = _own_directory("modempool-pg-", self.user)
        self.data = self.directory / "data"
        # as its owner, modes kept (the server wants its data directory 0700)
        self._run(["cp", "-a", str(_template()), str(self.data)])
        self._counter = 0

    def _run(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        _run(argv, self.user, self.directory, env)

    def start(self, language: str | None = None, *, durable: bool = False) -> None:
        """Start the server; with `language` (gettext's, "de") its messages are translated,
        as under an `lc_messages` in that language (the machine need not have its locale:
        gettext's LANGUAGE, over lc_messages C.UTF-8). `durable`: fsync, synchronous_commit
        and full_page_writes left on, as a production server has them (a benchmark's choice;
        the suite's cluster is thrown away, its commits need not reach the disk)."""
        options = f"-k {self.directory} -c listen_addresses='' -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if language:
            options += " -c lc_messages=C.UTF-8"
        self._run([server_program("pg_ctl"), "-D", str(self.data), "-o", options,
                   "-l", str(self.directory / "server.log"), "-w", "-t", "300", "start"],
                  env={"LANGUAGE": language} if language else None)

    def stop(self) -> None:
        self._run([server_program("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "300",
                   "stop"])

    def remove(self) -> None:
        """Stop the server at once (no shutdown checkpoint: nothing of it is kept) and remove
        its directory."""
        try:
            self._run([server_program("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                       "-t", "300", "stop"])
        except RuntimeError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, schema: str | None = None, dbname: str = "postgres") -> str:
        """A URL for the cluster; with `schema`, the spool's tables live in that schema."""
        url = f"postgresql://postgres@/{dbname}?host={quote(str(self.directory))}"
        if schema:
            url += "&options=" + quote(f"-csearch_path={schema}")
        return url

    def new_database(self) -> str:
        """A fresh database: for a test that other tests' sessions must not reach (a vacuum
        removes no row that an open snapshot in the same database may still see)."""
        import psycopg

        self._counter += 1
        name = f"d{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(dbname=name)

    def new_schema(self) -> str:
        """A fresh, empty schema: one spool per test without a database per test."""
        import psycopg

        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return self.url(name)


def answering(spool: Any, timeout: float = 120.0) -> None:
    """Wait until `spool` answers after its cluster started again: its engine found the server
    away and fails calls at once until its probe (every second) reaches it (`back`)."""
    from modempool.spool.unavailable import unavailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            spool.counts()
            return
        except Exception as exc:
            if unavailable(exc) is None or time.monotonic() > deadline:
                raise
        spool.engine.server.back.wait(max(deadline - time.monotonic(), 0))


class WatchLines(logging.Handler):
    """The server watch of a process's engine, followed by its log lines (for an engine out
    of the test's reach, such as an API server's): `back` is cleared when one says the server
    cannot be reached, set when it says it answers again. Attached with `watching()`."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.back = threading.Event()
        self.back.set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("the database at "):
            return
        if "cannot be reached" in message:
            self.back.clear()
        elif "answers again, after" in message:
            self.back.set()


def watching() -> AbstractContextManager[WatchLines]:
    """A `WatchLines` on the spool's logger (at INFO) for the block."""
    return handler_on("modempool.spool", WatchLines(), logging.INFO)


@contextmanager
def throwaway_cluster(wanted: bool = True, language: str | None = None, *,
                      durable: bool = False) -> Iterator[PgCluster | None]:
    """A started cluster (speaking `language`, `durable`: see `PgCluster.start`), removed at
    the end (the benchmarks' own); None when not `wanted` (the benchmark was given a database
    of its own)."""
    if not wanted:
        yield None
        return
    cluster = PgCluster()
    try:   # a start that fails leaves no directory behind either
        cluster.start(language, durable=durable)
        yield cluster
    finally:
        cluster.remove()
