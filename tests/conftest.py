"""Fixtures for the whole suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from modempool.box.ports import LOCK_DIR_ENV


#: Memory, not disk, for the suite's throwaway files when the machine has it (Linux's tmpfs).
MEMORY_DIR = Path("/dev/shm")


def pytest_configure(config: pytest.Config) -> None:
    """The suite's temporary files (tmp_path, its spools, its PostgreSQL clusters, the
    subprocesses' own) in memory: on a disk, making an SQLite spool waits for its fsyncs
    (about half of its 80 ms), and the suite makes hundreds. Not when the run names its own
    place ($TMPDIR, --basetemp); xdist's workers inherit the variable from the controller."""
    if (config.option.basetemp or os.environ.get("TMPDIR")
            or os.environ.get("PYTEST_DEBUG_TEMPROOT")):
        return
    if MEMORY_DIR.is_dir() and os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        os.environ["TMPDIR"] = str(MEMORY_DIR)
        tempfile.tempdir = str(MEMORY_DIR)


@pytest.fixture(autouse=True, scope="session")
def uucp_lock_dir(tmp_path_factory):
    """The suite's daemons and probes write their UUCP port locks (LCK..pts_N) in a directory
    of their own, not in the machine's /run/lock (subprocesses inherit the variable)."""
    directory = tmp_path_factory.mktemp("lock")
    os.environ[LOCK_DIR_ENV] = str(directory)
    yield directory


@pytest.fixture(autouse=True)
def fresh_repeated_lines():
    """Each test sees its own first "not now" line of a task: the lines another test had
    logged in this process within the minute are not held back here."""
    from modempool.spool.unavailable import REPEATED

    REPEATED.forget()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster, started once per test process (each xdist worker has its
    own, in its own temporary directory) on first use, and removed at the end."""
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster() as cluster:
        yield cluster
