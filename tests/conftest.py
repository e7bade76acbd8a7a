"""Fixtures for the whole suite."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from modempool.box.ports import LOCK_DIR_ENV


#: Memory, not disk, for the suite's throwaway files when the machine has it (Linux's tmpfs).
MEMORY_DIR = Path("/dev/shm")
#: What the suite may fill there at its peak (its PostgreSQL clusters, a few hundred MB each,
#: and its spools) with room to spare; a container's /dev/shm is often 64 MB.
MEMORY_NEEDED = 2 << 30


#: Where the suite's processes keep compiled modules when the environment asks Python not to
#: write them beside the sources (PYTHONDONTWRITEBYTECODE): set by the first process (xdist's
#: controller) and inherited by its workers and every subprocess they start.
BYTECODE_DIR_ENV = "PYTHONPYCACHEPREFIX"


def pytest_configure(config: pytest.Config) -> None:
    _temporary_files_in_memory(config)
    _bytecode_cached_for_subprocesses()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _made_bytecode_dir:   # only in the process that made it
        shutil.rmtree(_made_bytecode_dir, ignore_errors=True)


_made_bytecode_dir: str | None = None


def _bytecode_cached_for_subprocesses() -> None:
    """Compile each module once for the whole run, not once per subprocess: under
    PYTHONDONTWRITEBYTECODE every `modempool` command, daemon and simulator the suite starts
    (about a thousand) compiled its few hundred modules from source again, about a third of a
    command's start. The compiled files go to a directory of the run's own (PYTHONPYCACHEPREFIX),
    never beside the sources, so the environment's wish still holds for the tree."""
    global _made_bytecode_dir
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get(BYTECODE_DIR_ENV):
        return
    _made_bytecode_dir = os.environ[BYTECODE_DIR_ENV] = tempfile.mkdtemp(prefix="modempool-pyc-")
    del os.environ["PYTHONDONTWRITEBYTECODE"]


def _temporary_files_in_memory(config: pytest.Config) -> None:
    """The suite's temporary files (tmp_path, its spools, its PostgreSQL clusters, the
    subprocesses' own) in memory: on a disk, making an SQLite spool waits for its fsyncs
    (about half of its 80 ms), and the suite makes hundreds. Not when the run names its own
    place ($TMPDIR, --basetemp), nor where it holds less than MEMORY_NEEDED free; xdist's
    workers inherit the variable from the controller."""
    if (config.option.basetemp or os.environ.get("TMPDIR")
            or os.environ.get("PYTEST_DEBUG_TEMPROOT")):
        return
    if (MEMORY_DIR.is_dir() and os.access(MEMORY_DIR, os.W_OK | os.X_OK)
            and shutil.disk_usage(MEMORY_DIR).free >= MEMORY_NEEDED):
        os.environ["TMPDIR"] = str(MEMORY_DIR)
        tempfile.tempdir = str(MEMORY_DIR)


#: Tests of ten seconds or more (on two busy cores; most wait on other processes, a simulated
#: network or a database outage), by name without parameters, longest first.
SLOW_FIRST = (
    "tests/web/test_http_batch.py::test_100k_recipients_are_queued_and_a_retry_returns_the_same_messages",
    "tests/modempool/test_scaleout_liveness.py::test_a_database_outage_longer_than_the_silent_window_takes_no_live_daemons_lease",
    "tests/modempool/test_scaleout.py::test_two_daemons_share_one_queue_through_sigkills_of_one",
    "tests/modempool/test_crash.py::test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice",
    "tests/modempool/test_database_outage.py::test_two_daemons_wait_out_ten_seconds_without_the_database",
    "tests/web/test_http_batch.py::test_a_bad_number_at_index_99999_queues_nothing_and_is_named",
    "tests/modempool/test_spool_outage_past_give_up.py::test_a_url_whose_first_host_never_answers_is_back_after_a_long_outage",
    "tests/web/test_http_daemon.py::test_run_with_http_sends_what_the_api_queued",
    "tests/web/test_http_cli.py::test_serve_answers_on_loopback",
    "tests/modempool/test_scaleout_liveness.py::test_a_daemon_with_the_same_hostname_in_another_pid_table_takes_only_a_dead_ones_leases",
    "tests/modempool/test_database_outage.py::test_a_part_whose_marker_cannot_be_committed_waits_unsent_then_goes_out",
    "tests/modempool/test_hostile_cli.py::test_bad_input_is_one_line_naming_what_is_wrong",
    "tests/modempool/test_dispatch_field.py::test_a_bank_whose_modems_answer_after_1_5_s_comes_up_and_sends",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest tests (SLOW_FIRST) first, the rest in their order: xdist hands tests out in
    collection order, and a long one left for the end (the 100k batches are among the last
    files) keeps one worker busy while the other has nothing left to do."""
    rank = {name: place for place, name in enumerate(SLOW_FIRST)}

    def place(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("[", 1)[0], len(SLOW_FIRST))

    items.sort(key=place)   # stable: the others keep the order they were collected in


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection made (modules, test items, their marks: over a hundred thousand
    objects) lives as long as the run: out of the garbage collector's full passes, which
    walked it again each time a test made garbage (about 2 % of a worker's time)."""
    gc.collect()
    gc.freeze()


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
