"""The PostgreSQL spool's connections: a psycopg 3 pool, and the watch on its server.

A server that goes away must fail a call at once, not after the pool's own checks and
reconnection attempts have waited its whole timeout: a connection idle for a while is tried
before it is handed out, a broken one makes the watch ask the server (`_probe`), and a pool
timeout with connections out is told apart (busy) from one with none out (gone).
`postgres_engine.PostgresEngine` holds one of these (`engine.connections`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modempool.masked import one_line
from modempool.spool.database_errors import forbidden
from modempool.spool.postgres_conn import describe, named_rows
from modempool.spool.postgres_connect import connect_once
from modempool.spool.server_watch import OutageWaits, ServerWatch
from modempool.spool.unavailable import SpoolUnavailable

#: A pooled connection unused for longer than this is checked before it is handed out.
IDLE_CHECK_AFTER = 2.0
#: How long the server watch's probe waits for an idle pooled connection (seconds).
PROBE_POOL_WAIT = 1.0


class SpoolConnections:
    """The pool of connections to the spool's server (`url`), made with `connection_class`
    (postgres_connect's: host names looked up within the connect timeout), in `schema` (for
    a missing GRANT's message), and the server's watch (`server`), waiting out an outage
    as `outage` says."""

    def __init__(self, url: str, connection_class: Any, schema: str, *, pool_size: int,
                 connect_timeout: float, outage: OutageWaits = OutageWaits()) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url
        self.schema = schema
        self.outage = outage
        self._psycopg = psycopg
        self._idle_since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        # reconnect_timeout: see server_watch.py (the pool's doubling waits kept short); no
        # `check` callback: `_pooled` tries idle connections itself
        self.pool = ConnectionPool(
            url, connection_class=connection_class, min_size=1, max_size=pool_size, open=False,
            timeout=connect_timeout, kwargs={"autocommit": True}, configure=self._configure,
            name="modempool-spool", reconnect_timeout=outage.reconnect_give_up)
        self.pool.open(wait=True, timeout=connect_timeout)
        self.server = ServerWatch(describe(url), self._probe, probe_every=outage.probe_every)
        self._pool_timeout = PoolTimeout
        self._lent = 0   # connections out of the pool (`_lending`)
        self._lent_lock = threading.Lock()

    @staticmethod
    def _configure(raw: Any) -> None:
        raw.row_factory = named_rows

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection for the block; when it goes back, the time is noted for
        `_pooled`. Noted here, not by the pool's `reset` callback: with one, the pool hands
        every returned connection to its worker thread, which puts it back only once that
        thread has had its turn (a thread switch per transaction, and meanwhile the next
        transaction finds the connection away)."""
        self.server.check()   # away: fail now, not after the pool's timeout
        try:
            raw = self._pooled()
            try:
                with self._lending(), raw:   # as the pool's `connection()`: commit or roll back
                    yield raw
            except self._psycopg.errors.InsufficientPrivilege as exc:   # DDL's GRANT
                raise forbidden(exc, raw.info.user, self.schema) from None
            finally:
                self._idle_since[raw] = time.monotonic()
                self.pool.putconn(raw)
        except self._pool_timeout as exc:
            if self._lent:   # every connection out, and none more given: busy, not gone
                raise SpoolUnavailable(
                    f"all {self.pool.max_size} of this process's database connections are "
                    "in use", 1, one_line(exc)) from None
            self.server.failed(exc)   # none out, and none made in time: the server is gone
            raise
        except Exception as exc:
            self.server.failed(exc)
            raise

    def _pooled(self) -> Any:
        """A connection from the pool. One idle for a while is tried first (the server may
        have restarted, or gone, since); one in steady use is not, which saves a round trip
        per transaction. A broken one goes back (the pool drops it) and the server is asked
        at once (`_probe`): gone, its error is raised now, rather than after the pool's own
        checks and reconnection attempts have waited its whole timeout (10 s); there (it
        restarted), the pool's next connections are taken, each tried likewise."""
        from psycopg_pool import ConnectionPool

        probed = False
        for _ in range(self.pool.max_size + 1):
            raw = self.pool.getconn()
            if time.monotonic() - self._idle_since.get(raw, 0.0) <= IDLE_CHECK_AFTER:
                return raw
            try:
                ConnectionPool.check_connection(raw)
                return raw
            except self._psycopg.Error as exc:
                self.pool.putconn(raw)
                broken = exc
            if not probed:
                self._probe()
                probed = True
        raise broken

    @contextmanager
    def _lending(self) -> Iterator[None]:
        """Count the pooled connections out (a pool's timeout with some out means busy)."""
        with self._lent_lock:
            self._lent += 1
        try:
            yield
        finally:
            with self._lent_lock:
                self._lent -= 1

    def _probe(self) -> None:
        """Raise unless the server answers (the server watch's probe): a fresh connection,
        opened and closed; refused as one too many (53300, by its SQLSTATE in any language:
        `postgres_connect`), the server is there all the same. Failing that, an idle pooled
        connection answering `SELECT 1` (new connections refused, for example by pg_hba or a
        role's limit, while the pool's own still work). With none idle, the pool is asked to
        open one (in the background, for the next probe): after an outage longer than
        `OutageWaits.reconnect_give_up` it holds none and, every call failing at once, nothing
        else asks."""
        refused = connect_once(self.url, timeout=self.outage.probe_connect)
        if refused is None or refused.too_many:
            return
        exc = self._psycopg.OperationalError(refused.message)
        if self.pool.get_stats().get("pool_available", 0) == 0:
            self.pool.check()   # none to check: it grows by one, unless growing already
            raise exc
        try:
            with self.pool.connection(timeout=PROBE_POOL_WAIT) as raw:
                raw.execute("SELECT 1")
        except Exception:
            raise exc from None

    def close(self) -> None:
        """Stop the watch, then close the pool and its connections."""
        self.server.close()
        self.pool.close()
