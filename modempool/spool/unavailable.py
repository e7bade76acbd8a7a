"""When the spool's database cannot answer now, but may in a moment (`SpoolUnavailable`).

A PostgreSQL server that is restarting, failing over or gone, a connection lost, too many
connections, a lock or statement timeout, a transaction chosen as a serialization failure's or
a deadlock's victim; SQLite's write lock held past the busy timeout. None of these says anything
about the request: the same call again, a few seconds later, may well succeed, and nothing was
written (the transaction rolled back) -- except when the connection was lost at COMMIT: the
server may have committed before the answer was lost, and the engine raises
`SpoolOutcomeUnknown` there, which never says that nothing was changed (a client repeating
the request without its Idempotency-Key could send the SMS twice). `unavailable(exc)` tells such an error of either engine's
driver from any other (a bug, a constraint: not to be retried), so that a front end answers
"try again" (the HTTP API: 503 with Retry-After) rather than "internal error".

The driver's own exception is left to travel as it is: the rules that retry some of them
(group_commit.py writes a deadlock's victim again) read its SQLSTATE.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

from modempool.errors import PoolError, SpoolFailure
from modempool.masked import one_line

#: SQLSTATEs (or their two-character class) that mean "not now" rather than "not this", with
#: what a person is told and how many seconds to wait before trying again.
_NOT_NOW: dict[str, tuple[str, int]] = {
    "08": ("the connection to the database was lost", 5),                  # connection exception
    "57P01": ("the database server is shutting down", 5),                  # admin_shutdown
    "57P02": ("the database server is restarting after a crash", 5),       # crash_shutdown
    "57P03": ("the database server is not accepting connections yet", 5),  # cannot_connect_now
    "53300": ("the database has too many connections", 5),                 # too_many_connections
    "25006": ("the database is read-only now (a standby)", 5),             # after a failover
    "55P03": ("a lock was not granted in time", 1),                        # lock_not_available
    "57014": ("a statement ran past its time limit", 1),                   # query_canceled
    "40001": ("a concurrent change conflicted (serialization failure)", 1),
    "40P01": ("a concurrent change deadlocked", 1),                        # deadlock_detected
}
#: Those of one statement on a server that answered: the same work, on its own, may succeed at
#: once (the server is there; only this statement lost its wait or its race). Not 57014 (a
#: statement past statement_timeout): on an overloaded server each alone would take as long.
_ONE_STATEMENT = frozenset({"55P03", "40001", "40P01"})
_LOST = ("the database cannot be reached", 5)   # a connection error that carries no SQLSTATE
_SQLITE_BUSY = {5, 6}    # SQLITE_BUSY, SQLITE_LOCKED: another writer held on past the timeout


class SpoolUnavailable(SpoolFailure):
    """The spool's database cannot answer now (see the module); `retry_after`: the seconds
    after which the same call may be tried again; `reason`: the driver's own words (for a log,
    never for a client)."""

    code = "spool_unavailable"

    def __init__(self, what: str, retry_after: int, reason: str) -> None:
        super().__init__(f"the spool's database cannot answer now ({what}); nothing was "
                         f"changed, try again in {retry_after} s")
        self.retry_after = retry_after
        self.reason = reason


class SpoolOutcomeUnknown(SpoolUnavailable):
    """The connection was lost while the transaction committed: the change may or may not
    have been stored. Repeating it is safe only under the same Idempotency-Key (or after
    looking at what is stored)."""

    code = "spool_outcome_unknown"

    def __init__(self, retry_after: int, reason: str) -> None:
        PoolError.__init__(
            self, "the database connection was lost while the change was being saved; the "
            "request may have been stored: repeat it only with the same Idempotency-Key, or "
            "check /v1/messages first")
        self.retry_after = retry_after
        self.reason = reason


def outcome_unknown(exc: BaseException) -> SpoolOutcomeUnknown | None:
    """`exc`, raised by a COMMIT, as a SpoolOutcomeUnknown when it says the connection ended
    (no SQLSTATE, class 08, the server shutting down): the server may have committed before
    the answer was lost. None for an error that says the transaction rolled back."""
    if isinstance(exc, SpoolOutcomeUnknown):
        return exc
    if not _is_psycopg_operational(exc):
        return None
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02"):
        return SpoolOutcomeUnknown(5, one_line(exc))
    return None


def driver_errors() -> tuple[type[BaseException], ...]:
    """The base error classes of the engines' drivers (those installed), for a front end that
    catches them to ask `unavailable`."""
    try:
        import psycopg
    except ImportError:   # pragma: no cover - a dependency of the package
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def unavailable(exc: BaseException) -> SpoolUnavailable | None:
    """`exc` as a SpoolUnavailable when it says the database cannot answer now, else None."""
    if isinstance(exc, SpoolUnavailable):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        # the extended code: SQLITE_BUSY_SNAPSHOT (517), _RECOVERY (261), LOCKED_SHAREDCACHE
        # (262)... carry the primary one in their low byte
        if isinstance(code, int) and code & 0xFF in _SQLITE_BUSY:
            return SpoolUnavailable("another writer held the spool past the busy timeout", 1,
                                    one_line(exc))
        return None
    sqlstate = getattr(exc, "sqlstate", None)
    if not isinstance(sqlstate, str) or not sqlstate:
        if _is_psycopg_operational(exc):   # refused, reset, closed, a pool's timeout
            return SpoolUnavailable(*_LOST, one_line(exc))
        return None
    found = _NOT_NOW.get(sqlstate) or _NOT_NOW.get(sqlstate[:2])
    return SpoolUnavailable(*found, one_line(exc)) if found else None


def one_statement(exc: BaseException) -> bool:
    """Whether `exc` is a "not now" of one statement on a server that answered it (a lock not
    granted in time, a deadlock's or a serialization failure's victim), not of the server or
    the connection (nor a COMMIT of unknown outcome, nor SQLite's write lock, which a second
    try would wait for again, nor a statement's time limit: the server overloaded)."""
    return (not isinstance(exc, SpoolUnavailable)
            and getattr(exc, "sqlstate", None) in _ONE_STATEMENT)


def _is_psycopg_operational(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:   # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError)


class RepeatedLines:
    """Which of a task's repeated "not now" lines to write: a loop that fails every second
    while the database is away says so once, then again at most every `every` seconds with
    how many times it failed in between (an outage fills no log)."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()   # tasks on the loop and in the lanes' threads
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def due(self, key: tuple[str, str]) -> int | None:
        """None: hold this line back; else how many like it were held back before it."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.every:
                self._last[key] = (last[0], last[1] + 1)
                return None
            if len(self._last) >= 1000:   # keys with ids in them: forget the old ones
                self._last = {k: v for k, v in self._last.items() if now - v[0] < self.every}
            self._last[key] = (now, 0)
            return last[1] if last is not None else 0

    def forget(self) -> None:
        """Every line is the first again."""
        with self._lock:
            self._last.clear()


#: A background task's "not now" line, repeated at most once a minute: the process's limiter,
#: for tasks outside a daemon's run (which has its own: `own_repeated_lines`).
REPEATED = RepeatedLines(60.0)
_LINES: contextvars.ContextVar[RepeatedLines] = contextvars.ContextVar("modempool_repeated_lines",
                                                                      default=REPEATED)


@contextlib.contextmanager
def own_repeated_lines() -> Iterator[RepeatedLines]:
    """Within it, in this task and in the tasks and lane threads it starts, "not now" lines
    are held back by a limiter of their own (yielded): two daemons in one process (tests, a
    library user's) each say their own outage, neither silenced by the other's line. After
    it, the limiter that was there before."""
    lines = RepeatedLines(REPEATED.every)
    token = _LINES.set(lines)
    try:
        yield lines
    finally:
        _LINES.reset(token)


def database_failed(exc: BaseException) -> bool:
    """Whether `exc` is the database's failure, not the work's: it cannot answer now
    (`unavailable`), or it refused the work for an operator to fix (a SpoolFailure: a right
    missing, or one its callers raise for a trigger's or constraint's refusal). Work that
    failed so is kept and tried again (a `Backlog`, a retry loop), never dropped as a bug's
    nor taken for the rules' refusal."""
    return isinstance(exc, SpoolFailure) or unavailable(exc) is not None


def refused_by_database(exc: BaseException) -> bool:
    """Whether `exc` is a database's refusal of a statement it ran (a constraint, a trigger's
    exception, a value out of range), not a bug of the statement or of its caller (a
    TypeError, a column or table missing, a closed connection): only such a refusal is for
    an operator to lift. SQLite's OperationalError is left out: it says "no such column"."""
    if isinstance(exc, sqlite3.DatabaseError):
        return not isinstance(exc, (sqlite3.ProgrammingError, sqlite3.OperationalError))
    try:
        import psycopg
    except ImportError:   # pragma: no cover - a dependency of the package
        return False
    # class 42: a statement the schema does not fit (a column, a table, a function missing);
    # a trigger's RAISE EXCEPTION (P0001) is a ProgrammingError to psycopg, and a refusal
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return (isinstance(exc, psycopg.DatabaseError) and bool(sqlstate)
            and not sqlstate.startswith("42"))


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log that `what` failed because of `exc`, for a task that tries again later: one line
    when the database cannot answer now (an outage fills no log with tracebacks: the same
    line at most once a minute, see `RepeatedLines`) or refused (a role's missing right: an
    ERROR naming the GRANT, also at most once a minute; another library error each time),
    else with the traceback (a bug to find)."""
    found = unavailable(exc)
    if found is None and isinstance(exc, SpoolFailure):   # a right missing, an outcome refused
        log_repeated(logger, logging.ERROR, what, str(exc))
    elif found is None and isinstance(exc, PoolError):
        logger.error("%s: %s", what, exc)
    elif found is None:
        logger.error("%s", what, exc_info=exc)
    else:
        log_repeated(logger, logging.WARNING, what, f"{found} [{found.reason}]")


def log_repeated(logger: logging.Logger, level: int, what: str, detail: str) -> None:
    """"`what`: `detail`" at `level`, for a line a retry loop would repeat: held back as the
    "not now" lines are (`RepeatedLines`: at most once a minute for the same `what`)."""
    if (held_back := _LINES.get().due((logger.name, what))) is not None:
        logger.log(level, "%s: %s%s", what, detail, f" ({held_back} more like it since the "
                   "last such line)" if held_back else "")
