"""One fresh connection to a PostgreSQL server, and the SQLSTATE it was refused with
(`connect_once`): the server watch's probe asks whether the server answers, and a refusal as
one connection too many (53300) says that it does.

A URL may name several hosts (a primary and its standbys). libpq's asynchronous connection
does not time each host out (`connect_timeout` holds only for its blocking call), so a first
host that takes the TCP connection and never answers would use the whole wait and the next
host would never be tried. The URL is therefore split into one attempt per host and address,
as psycopg's own `connect` does (`conninfo_attempts`), each with its own time limit.

Neither libpq nor psycopg bounds the lookup of a host name: psycopg asks the resolver
(`getaddrinfo`) before it connects, and a resolver that does not answer holds the caller for its
own timeouts (30 s and more), the connect timeout unheeded. So the names are looked up here
first, each within the connect timeout (`with_addresses`), and given to libpq as `hostaddr`:
every connection the spool opens (`connection_class`: the first, the pool's, LISTEN's, the
probe's) is bounded, and a name the resolver leaves unanswered is said in one line naming it.

psycopg gives a failed connection no SQLSTATE: libpq keeps only the message text, in the
server's language (`lc_messages`: "too many connections" in English, "tut mir leid, schon zu
viele Verbindungen" in German). Asked for verbose errors before it connects, libpq writes the
SQLSTATE into that text ("FATAL:  53300: ..."), whatever the language. psycopg has no call for
that, so the function is looked up (ctypes) through psycopg's own binding: the libpq its
extension module was linked with, or the one its ctypes binding opened. Where it cannot be
found, the English words are looked for instead, and a server in another language is
recognised only by an idle pooled connection answering (the probe's other test;
docs/scale-out.md).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

log = logging.getLogger("modempool.spool")

#: What libpq calls verbose errors (PQERRORS_VERBOSE): the SQLSTATE after the severity.
_VERBOSE = 2
#: "FATAL:  53300: ..." (the severity in the server's language, two blanks, the SQLSTATE)
_SQLSTATE = re.compile(r":  ([0-9A-Z]{5}): ")
#: A server's own refusal in libpq's text ("... failed: FATAL:  role "x" does not exist": its
#: severity, in the server's language, then two blanks), not a failure to reach it.
_SERVER_SAID = re.compile(r"failed: [^:;\n]{1,30}:  ")


def server_refused(message: str) -> bool:
    """Whether libpq's `message` of a failed connection is a server's refusal (an unknown role
    or database, a password refused, a server starting up), not a server out of reach."""
    return _SERVER_SAID.search(message) is not None


#: The English words of a refusal as one too many, where no SQLSTATE could be asked for.
TOO_MANY_CONNECTIONS = ("too many connections", "too many clients",
                        "connection slots are reserved")


@dataclass(frozen=True, slots=True)
class Refused:
    """A connection that failed: libpq's message, and the SQLSTATEs the servers tried gave
    (none when no server answered: refused, no such socket, timed out)."""

    message: str
    sqlstates: tuple[str, ...]

    @property
    def too_many(self) -> bool:
        """Refused as one connection too many (53300): the server is there."""
        return "53300" in self.sqlstates or any(words in self.message
                                                for words in TOO_MANY_CONNECTIONS)


def connect_once(url: str, timeout: float) -> Refused | None:
    """Open one connection to `url` (libpq's conninfo or URL) and close it: None if it
    succeeded, else why not (every host's refusal). Each host and address is given at most
    `timeout` seconds, or the URL's `connect_timeout` where that is shorter."""
    from psycopg import Error, conninfo

    params = conninfo.conninfo_to_dict(url)
    each = min(timeout, conninfo.timeout_from_conninfo(params))
    try:
        attempts = conninfo.conninfo_attempts(with_addresses(params, each))
    except Error as exc:   # no host resolved
        return Refused(str(exc), ())
    refusals = []
    for attempt in attempts:
        refused = _attempt(conninfo.make_conninfo("", **attempt), each, _where(attempt))
        if refused is None:
            return None
        refusals.append(refused)
    return Refused("\n".join(refused.message for refused in refusals),
                   tuple(dict.fromkeys(s for refused in refusals for s in refused.sqlstates)))


class _Lookup:
    """One host name's lookup, in a thread of its own: a lookup cannot be cut short, so one
    given up on ends unheeded, and later connections wait for the same one instead of
    starting another (one thread per name, however often a connection is tried)."""

    def __init__(self, host: str, port: str) -> None:
        self.host = host
        self.addresses: list[str] | None = None
        self.error: OSError | None = None
        self.done = threading.Event()
        threading.Thread(target=self._look, args=(port,), daemon=True,
                         name=f"lookup {host}").start()

    def _look(self, port: str) -> None:
        try:
            found = socket.getaddrinfo(self.host, port or None, proto=socket.IPPROTO_TCP,
                                       type=socket.SOCK_STREAM)
            self.addresses = list(dict.fromkeys(str(item[4][0]) for item in found))
        except OSError as exc:
            self.error = exc
        finally:
            with _LOOKUPS_LOCK:
                _LOOKUPS.pop((self.host, port), None)
            self.done.set()

    def failure(self, seconds: float) -> str:
        """Why it gave no address (not found, or no answer within `seconds`)."""
        if self.error is not None:
            return f"failed to resolve host {self.host!r}: {self.error}"
        return (f"could not look up host {self.host!r} within {seconds:g} s (the name "
                "server did not answer)")


_LOOKUPS: dict[tuple[str, str], _Lookup] = {}   # (host, port) -> its lookup running
_LOOKUPS_LOCK = threading.Lock()


def _lookup(host: str, port: str) -> _Lookup:
    with _LOOKUPS_LOCK:
        running = _LOOKUPS.get((host, port))
        if running is None:
            running = _LOOKUPS[(host, port)] = _Lookup(host, port)
        return running


def _is_name(host: str) -> bool:
    """Whether `host` is a name to look up (not a socket directory, nor an address)."""
    if not host or host.startswith(("/", "@")) or host[1:2] == ":":
        return False
    try:
        ip_address(host)
    except ValueError:
        return True
    return False


def with_addresses(params: dict[str, Any], seconds: float) -> dict[str, Any]:
    """`params` (libpq's, as `conninfo_to_dict` gives them) with the addresses of their host
    names as `hostaddr`, one host entry per address, each name looked up within `seconds`
    (all at once). A name not found, or not answered in time, is left out, as psycopg leaves
    out one not found; none left: `OperationalError`, one line naming each host and why.
    Parameters with a `hostaddr` already, or no name to look up, are returned as they are."""
    from psycopg import OperationalError

    if params.get("hostaddr") or not params.get("host"):
        return params
    hosts = str(params["host"]).split(",")
    ports = str(params["port"]).split(",") if params.get("port") else []
    if (len(ports) > 1 and len(ports) != len(hosts)) or not any(map(_is_name, hosts)):
        return params   # nothing to look up (or libpq says what is wrong)
    # no port given: none written, so that libpq's own default (PGPORT, else 5432) holds
    port_of = [ports[i] if len(ports) > 1 else (ports[0] if ports else "")
               for i in range(len(hosts))]
    lookups = {i: _lookup(host, port_of[i]) for i, host in enumerate(hosts) if _is_name(host)}
    deadline = time.monotonic() + seconds
    for lookup in lookups.values():
        lookup.done.wait(max(deadline - time.monotonic(), 0))
    entries: list[tuple[str, str, str]] = []   # (host, hostaddr, port)
    failures = []
    for i, host in enumerate(hosts):
        lookup = lookups.get(i)
        if lookup is None:   # an address stands for itself; a socket directory has none
            entries.append((host, "" if host.startswith(("/", "@")) else host, port_of[i]))
        elif lookup.addresses:
            entries += [(host, address, port_of[i]) for address in lookup.addresses]
        else:
            failures.append(lookup.failure(seconds))
    if not entries:
        raise OperationalError("; ".join(failures))
    found = {**params, "host": ",".join(e[0] for e in entries),
             "hostaddr": ",".join(e[1] for e in entries)}
    if ports:
        found["port"] = ",".join(e[2] for e in entries)
    return found


@functools.cache
def connection_class(seconds: float) -> type:
    """psycopg's `Connection` whose `connect` looks its host names up first (`with_addresses`)
    within `seconds`, or the URL's `connect_timeout` where that is shorter: for the spool's
    every connection (the pool's `connection_class` too)."""
    import psycopg
    from psycopg import conninfo as libpq_params

    class BoundedLookups(psycopg.Connection):  # type: ignore[type-arg]
        @classmethod
        def _get_connection_params(cls, conninfo: str, **kwargs: Any) -> Any:
            # psycopg's hook for the parameters, called before any lookup of its own
            params = super()._get_connection_params(conninfo, **kwargs)
            own = libpq_params.timeout_from_conninfo(libpq_params.conninfo_to_dict(conninfo))
            return with_addresses(params, min(seconds, own))

    return BoundedLookups


def _attempt(dsn: str, timeout: float, where: str) -> Refused | None:
    """One connection attempt (one host, one address) within `timeout` seconds."""
    from psycopg import pq

    pgconn = pq.PGconn.connect_start(dsn.encode())
    try:
        verbose = _error_verbosity()
        if verbose is not None:
            verbose(pgconn.pgconn_ptr, _VERBOSE)
        deadline = time.monotonic() + timeout
        status = pq.PollingStatus.WRITING   # libpq: as if PQconnectPoll had said so
        while pgconn.status != pq.ConnStatus.BAD and status != pq.PollingStatus.FAILED:
            if status == pq.PollingStatus.OK:
                return None
            if not _ready(pgconn.socket, status == pq.PollingStatus.WRITING,
                          deadline - time.monotonic()):
                return Refused(f"{where}: no answer within {timeout:g} s", ())
            status = pq.PollingStatus(pgconn.connect_poll())
        message = pgconn.error_message.decode("utf-8", "replace")
        return Refused(_plain(message) or f"{where}: connection failed",
                       tuple(_SQLSTATE.findall(message)))
    finally:
        pgconn.finish()


def _ready(socket: int, writing: bool, seconds: float) -> bool:
    """Whether `socket` is ready to write (or read) within `seconds`. A selector, not
    select.select, which refuses a descriptor numbered 1024 or more (a large bank)."""
    with selectors.DefaultSelector() as selector:
        selector.register(socket, selectors.EVENT_WRITE if writing else selectors.EVENT_READ)
        return bool(selector.select(max(seconds, 0)))


def _where(attempt: dict[str, object]) -> str:
    """The host (its address) and port of one attempt, for its refusal's text."""
    host = attempt.get("hostaddr") or attempt.get("host") or "the default socket"
    port = attempt.get("port")
    return f"connection to server at {host}" + (f", port {port}" if port else "")


def _plain(message: str) -> str:
    """libpq's verbose message as its default one: without the source LOCATION line and
    the SQLSTATE written into the text (kept apart, in `Refused.sqlstates`)."""
    lines = [line for line in message.strip().splitlines()
             if not line.lstrip().startswith("LOCATION:")]
    return _SQLSTATE.sub(":  ", "\n".join(lines)).strip()


@functools.cache
def _error_verbosity() -> Callable[[int, int], object] | None:
    """PQsetErrorVerbosity of the libpq psycopg uses, else None (said once, at INFO): a
    function of another libpq given psycopg's connection could corrupt it."""
    function = verbosity_function(_psycopg_libpq())
    if function is None:
        log.info("libpq's verbose errors cannot be asked for here: a refusal as one "
                 "connection too many is known by its English words only")
    return function


def verbosity_function(library: ctypes.CDLL | None) -> Callable[[int, int], object] | None:
    """`library`'s PQsetErrorVerbosity, if it has one and is the libpq version psycopg
    reports (`pq.version()`): the version check makes sure it is psycopg's own (or one
    whose connection structure is the same)."""
    from psycopg import pq

    if library is None:
        return None
    function = getattr(library, "PQsetErrorVerbosity", None)
    version = getattr(library, "PQlibVersion", None)
    if function is None or version is None:
        return None
    version.argtypes, version.restype = [], ctypes.c_int
    if version() != pq.version():
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _psycopg_libpq() -> ctypes.CDLL | None:
    """The libpq psycopg calls, as a library to look functions up in. psycopg's ctypes
    binding: the very handle it opened. Its extension module (psycopg-binary, psycopg-c):
    that module, already loaded, found again by its path (RTLD_NOLOAD: never a new load);
    a function looked up through it is the one of its own dependencies (the libpq it was
    linked with, or its own copy when linked statically), never another libpq mapped into
    the process, and its path need not exist on disk any more (a package upgraded under a
    running daemon)."""
    from psycopg import pq

    if pq.__impl__ == "python":
        from psycopg.pq import _pq_ctypes

        return ctypes.CDLL(_pq_ctypes.pq._name, handle=_pq_ctypes.pq._handle)
    module = sys.modules.get(pq.PGconn.__module__)
    path = getattr(module, "__file__", None)
    if path is None or not hasattr(os, "RTLD_NOLOAD"):
        return None
    try:
        return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return None
