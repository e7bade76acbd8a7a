"""The server watch's probe connection (`postgres_connect.connect_once`) against a real cluster:
each host of a URL tried in turn with its own time limit, any descriptor number, the
refusal's text without libpq's source location, and verbose errors asked of psycopg's own
libpq wherever its files are (a path with a blank, files replaced under a running process)."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import resource
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg import pq

from modempool.spool.postgres_connect import connect_once, verbosity_function

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def never_answering() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that takes connections (the kernel's backlog) and never says
    a word: a powered-off primary behind a router, a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def two_hosts(cluster, port: int, url: str | None = None) -> str:
    """`url` (the cluster's) naming first the silent port on 127.0.0.1, then the cluster."""
    url = url or cluster.url()
    directory = quote(str(cluster.directory))
    assert f"host={directory}" in url
    return url.replace(f"host={directory}",
                       f"host=127.0.0.1,{directory}&port={port},5432&connect_timeout=2")


def test_a_first_host_that_never_answers_is_given_up_for_the_next(pg_cluster):
    """libpq's asynchronous connection does not time each host out: one wait for all of
    them stayed on the first host until it ran out, and the second was never tried."""
    with never_answering() as port:
        assert connect_once(two_hosts(pg_cluster, port), timeout=5) is None
        refused = connect_once(two_hosts(pg_cluster, port, pg_cluster.url(dbname="nope")),
                               timeout=5)
    assert refused is not None
    assert f"127.0.0.1, port {port}: no answer within 2 s" in refused.message  # its own limit
    assert 'database "nope" does not exist' in refused.message   # and the next one's answer
    assert refused.sqlstates == ("3D000",)


def test_a_descriptor_numbered_past_1024_is_waited_on(pg_cluster):
    """A daemon of a large bank may hold more than 1024 descriptors (its limit raised):
    select.select refused the probe's socket (ValueError), so the server stayed away."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= 2048, "the test needs 2048 descriptors"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        assert connect_once(pg_cluster.url(), timeout=5) is None
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_refusal_reads_as_libpqs_usual_text_its_sqlstate_kept_apart(pg_cluster):
    """Verbose errors (asked for the SQLSTATE) add the server's source location: not for a
    log line."""
    refused = connect_once(pg_cluster.url(dbname="nope"), timeout=5)
    assert refused is not None and refused.sqlstates == ("3D000",)
    assert 'FATAL:  database "nope" does not exist' in refused.message
    assert "LOCATION" not in refused.message and "3D000" not in refused.message


def _libpq_versions() -> dict[int, ctypes.CDLL]:
    """The libpqs at hand (the system's, psycopg-binary's own) by their version."""
    paths = [ctypes.util.find_library("pq")]
    spec = importlib.util.find_spec("psycopg_binary")
    if spec is not None and spec.origin is not None:
        paths += Path(spec.origin).parent.parent.glob("psycopg_binary.libs/libpq*")
    found = {}
    for path in filter(None, paths):
        library = ctypes.CDLL(str(path))
        library.PQlibVersion.restype = ctypes.c_int
        found[library.PQlibVersion()] = library
    return found


def test_a_libpq_of_another_version_is_never_given_psycopgs_connection():
    """Another libpq beside psycopg's own (the system's beside psycopg-binary's): a function
    of it would be handed a connection structure it may not know."""
    others = [lib for version, lib in _libpq_versions().items() if version != pq.version()]
    assert others, "the test needs two libpq versions"
    assert verbosity_function(others[0]) is None
    assert verbosity_function(ctypes.CDLL(ctypes.util.find_library("c"))) is None
    assert verbosity_function(None) is None


SQLSTATE_OF_A_MISSING_DATABASE = """
import os, sys
from psycopg import pq
module = sys.modules[pq.PGconn.__module__]
assert module.__file__.startswith(sys.argv[2]), module.__file__   # the copy is in use
for path in [module.__file__, *sys.argv[3:]]:   # replaced under the running process
    os.unlink(path)
from modempool.spool.postgres_connect import connect_once
print(connect_once(sys.argv[1], timeout=10).sqlstates)
"""


def test_verbose_errors_from_psycopg_binary_under_a_path_with_a_blank_its_files_deleted(
        pg_cluster, tmp_path):
    """/proc/self/maps was read by its last blank-separated word: a site-packages path with a
    blank in it (a home directory "John Smith"), or a library deleted by an upgrade under a
    running daemon (" (deleted)"), gave no libpq, and a refusal no SQLSTATE."""
    spec = importlib.util.find_spec("psycopg_binary")
    assert spec is not None and spec.origin is not None, "the test needs psycopg-binary"
    installed = Path(spec.origin).parent
    copy = tmp_path / "John Smith" / "site-packages"
    for name in ("psycopg_binary", "psycopg_binary.libs"):
        shutil.copytree(installed.parent / name, copy / name)
    libpq = [str(p) for p in (copy / "psycopg_binary.libs").glob("libpq*")]
    assert len(libpq) == 1
    result = subprocess.run(
        [sys.executable, "-c", SQLSTATE_OF_A_MISSING_DATABASE, pg_cluster.url(dbname="nope"),
         str(copy), *libpq],
        env={**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{ROOT}",
             "PSYCOPG_IMPL": "binary"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('3D000',)"


SILENT_RESOLVER = Path(__file__).with_name("silent_resolver.py")
SLOW_NAME = "db.slow.test"


def _where_names_go_unanswered(*command: str) -> subprocess.CompletedProcess:
    """`command` run where the name server never answers (`silent_resolver.py`: a private
    network and mount namespace, so the machine's resolver is untouched)."""
    if subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -n -m (root): the silent name server lives in a namespace")
    return subprocess.run(
        ["unshare", "-n", "-m", "--propagation", "private", sys.executable,
         str(SILENT_RESOLVER), "--", *command], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_host_name_never_answered_is_given_up_within_the_connect_timeout(tmp_path):
    """The resolver holds a lookup for 30 s; the spool's URL says connect_timeout=2. The CLI
    says in one line that the name was not answered within 2 s, naming the host (the old
    code waited for the resolver, then said "Temporary failure in name resolution")."""
    config = tmp_path / "modempool.toml"
    config.write_text(f'[spool]\nurl = "postgresql://pool@{SLOW_NAME}/modempool?'
                      'connect_timeout=2"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n',
                      "utf-8")
    done = _where_names_go_unanswered(sys.executable, "-m", "cli", "status", "--config",
                                      str(config))
    out = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, out
    assert out.splitlines() == [
        f"Error: cannot reach the spool at postgresql://pool@{SLOW_NAME}/modempool: could not "
        f"look up host '{SLOW_NAME}' within 2 s (the name server did not answer)"], out


def test_a_name_never_answered_before_the_cluster_is_left_for_it(pg_cluster):
    """A URL naming first a host whose lookup is never answered, then the cluster (its socket
    directory): the spool opens, its pool fills, the probe finds the server, each lookup
    given up after connect_timeout (the old code waited for the resolver at every connection,
    and the pool's first one ran past its time: the spool did not open)."""
    directory = quote(str(pg_cluster.directory))
    url = pg_cluster.new_schema()
    assert f"host={directory}" in url
    url = url.replace(f"host={directory}", f"host={SLOW_NAME},{directory}&connect_timeout=2")
    program = (
        "import sys\n"
        "from modempool.spool import Spool\n"
        "from modempool.spool.postgres_connect import connect_once\n"
        "with Spool(sys.argv[1]) as spool:\n"
        "    spool.enqueue('+8613800138000', 'through the second host')\n"
        "    print('queued', spool.counts()['queued'])\n"
        "print('probe', connect_once(sys.argv[1], timeout=5))\n")
    done = _where_names_go_unanswered(sys.executable, "-c", program, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["queued 1", "probe None"], done.stdout + done.stderr


def test_a_url_without_a_port_leaves_pgport_to_libpq():
    """rev20b L5: the addresses looked up for a host name are given with no port where the URL
    gives none, so that PGPORT (libpq's default) still holds; a port given is kept."""
    from modempool.spool.postgres_connect import with_addresses

    found = with_addresses({"host": "localhost,/run/postgresql", "dbname": "x"}, 5)
    assert "port" not in found
    assert found["host"].split(",")[-1] == "/run/postgresql"
    assert found["hostaddr"].split(",")[-1] == ""
    given = with_addresses({"host": "localhost", "port": "5433"}, 5)
    assert set(given["port"].split(",")) == {"5433"}
