"""One fresh connection to a PostgreSQL server, and the SQLSTATE it was refused with
(`connect_once`): the server watch's probe asks whether the server answers, and a refusal as
one connection too many (53300) says that it does.

psycopg gives a failed connection no SQLSTATE: libpq keeps only the message text, in the
server's language (`lc_messages`: "too many connections" in English, "tut mir leid, schon zu
viele Verbindungen" in German). Asked for verbose errors before it connects, libpq writes the
SQLSTATE into that text ("FATAL:  53300: ..."), whatever the language. psycopg has no call for
that, so the function is taken from the libpq that psycopg loaded (ctypes, by the path mapped
into this process). Where it cannot be found (not Linux, a libpq linked in statically), the
English words are looked for instead, and a server in another language is recognised only by
an idle pooled connection answering (the probe's other test; docs/scale-out.md).
"""

from __future__ import annotations

import ctypes
import functools
import re
import select
import time
from collections.abc import Callable
from dataclasses import dataclass

#: What libpq calls verbose errors (PQERRORS_VERBOSE): the SQLSTATE after the severity.
_VERBOSE = 2
#: "FATAL:  53300: ..." (the severity in the server's language, two blanks, the SQLSTATE)
_SQLSTATE = re.compile(r":  ([0-9A-Z]{5}): ")
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
    succeeded, else why not. Waits at most `timeout` seconds."""
    from psycopg import conninfo, pq

    pgconn = pq.PGconn.connect_start(conninfo.make_conninfo(url).encode())
    try:
        verbose = _error_verbosity()
        if verbose is not None:
            verbose(pgconn.pgconn_ptr, _VERBOSE)
        deadline = time.monotonic() + timeout
        status = pq.PollingStatus.WRITING   # libpq: as if PQconnectPoll had said so
        while pgconn.status != pq.ConnStatus.BAD and status != pq.PollingStatus.FAILED:
            if status == pq.PollingStatus.OK:
                return None
            left = deadline - time.monotonic()
            socket = pgconn.socket
            ready = (select.select([socket], [], [], max(left, 0)) if status ==
                     pq.PollingStatus.READING else select.select([], [socket], [], max(left, 0)))
            if not any(ready):
                return Refused(f"no answer within {timeout:g} s", ())
            status = pq.PollingStatus(pgconn.connect_poll())
        message = pgconn.error_message.decode("utf-8", "replace").strip()
        return Refused(message or "connection failed", tuple(_SQLSTATE.findall(message)))
    finally:
        pgconn.finish()


@functools.cache
def _error_verbosity() -> Callable[[int, int], object] | None:
    """PQsetErrorVerbosity of the libpq psycopg uses (its own in psycopg-binary, the
    system's otherwise); None when that one cannot be told for sure (a function of another
    libpq given psycopg's connection would corrupt it)."""
    from psycopg import pq

    if pq.__impl__ == "python":   # psycopg's ctypes binding: its library at hand, opened
        from psycopg.pq import _pq_ctypes   # again (its own function objects left as they are)

        library = ctypes.CDLL(_pq_ctypes.pq._name)
    else:
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                paths = {line.split()[-1] for line in maps if "/libpq" in line}
        except OSError:
            return None
        own = {path for path in paths if "psycopg_binary" in path}
        paths = own if pq.__impl__ == "binary" else paths - own
        if len(paths) != 1:
            return None
        try:
            library = ctypes.CDLL(paths.pop())
        except OSError:
            return None
    function = getattr(library, "PQsetErrorVerbosity", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function
