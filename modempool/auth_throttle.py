"""Failed authentication attempts per client address, counted in the spool, so that every
server on it (`serve`, the sidecar of `run --http`, several boxes on one PostgreSQL) counts
an address's failures together: guesses spread over N servers do not get N times the limit.

An address may fail `limit` times at once, then once per `window / limit` seconds (a generic
cell rate algorithm: one time per address, `clear_at`, when its failures will have drained;
each failure moves it on by that interval, from now or from where it was).

A failure costs the spool little whatever the flood, so that guesses never keep the modems
from the spool's write lock (issue 15): it is counted in this process's memory at once, and
the process writes its addresses' new failures together, in one transaction, at most once
every `flush_every` seconds (`flush`: the first failure after a quiet while at once, the rest
by the server's `keep_flushing` task). That transaction also deletes the rows that have
drained, so the table holds only the addresses that failed within the last `window`. An
address this process has not seen is one more row to write: past `new_per_second` new
addresses in a second, a new one that fails is refused from memory for one interval, as if at
its limit, and nothing of it is written (a flood of addresses costs the spool at most
`new_per_second` rows a second per server).

A request whose key passes writes nothing and reads nothing: a server refuses an address from
its memory (the shared `clear_at` its last write returned, plus its own failures since). So
with N servers an address gets at most about N times the limit within one `flush_every`, and
after that the shared count; those attempts are counted too.

What a key is (`counted_as`): an IPv4 address; an IPv6 address is counted alone at the limit
and with the rest of its /64 network at NEIGHBOURS times the limit (a host or a LAN is given a
whole /64: counted only apart, its 2^64 addresses would give one attacker as many limits;
counted only together, one bad script would lock out its office). Addresses that mean another
machine on every host (loopback, link-local) and text that is no address are qualified with
this host's name, so that one box's stale local script does not lock out the local clients of
every box on a shared spool. On PostgreSQL the shared times are the database's clock.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from typing import Any

from modempool.errors import SpoolFailure
from modempool.masked import one_line
from modempool.spool.unavailable import driver_errors

log = logging.getLogger("modempool.web")

FLUSH_EVERY = 0.5             # seconds between a process's writes of its failures
NEW_PER_SECOND = 100          # new addresses a second a process writes; past it, memory only
NEIGHBOURS = 8                # an IPv6 /64 may fail this many times an address's limit

SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_failures (
    client    TEXT PRIMARY KEY,            -- the address whose attempts failed
    clear_at  DOUBLE PRECISION NOT NULL    -- Unix time when its failures have drained
);
CREATE INDEX IF NOT EXISTS auth_failures_by_time ON auth_failures (clear_at)
"""


class FailureThrottle:
    """`FailureThrottle(spool, limit=10, window=60)`: `retry_after(client)` before checking a
    key and `failed(client)` after a wrong one are memory only (no I/O, fit for the event
    loop) but for the write `failed` starts when none was made for `flush_every` seconds;
    `flush()` writes the failures counted since (a server runs `keep_flushing`).
    `max_addresses` bounds what one process remembers (the least recently failing forgotten
    first)."""

    def __init__(self, spool: Any, limit: int = 10, window: float = 60.0,
                 max_addresses: int = 100_000, flush_every: float = FLUSH_EVERY,
                 new_per_second: int = NEW_PER_SECOND) -> None:
        self.spool, self.limit, self.window = spool, limit, window
        self.max_addresses, self.flush_every = max_addresses, flush_every
        self.new_per_second = new_per_second
        self.step = window / limit
        spool.engine.ensure_schema(SCHEMA)
        self._skew = 0.0        # the database's clock minus this host's (PostgreSQL)
        # key -> when its failures drain as far as this process knows (the shared clear_at
        # its last write returned, and its own failures since), the most recent failure last
        self._clear_at: dict[str, float] = {}
        self._pending: dict[str, int] = {}     # key -> failures not written yet
        self._flushed_at = float("-inf")
        self._flushing = False
        self._new_second, self._new_count = 0, 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clear_at)

    def now(self) -> float:
        """The shared clock: this host's, set to the database's on PostgreSQL."""
        return time.time() + self._skew

    def step_of(self, key: str) -> float:
        return self.step / NEIGHBOURS if key.endswith("/64") else self.step

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds until `client` may try again; 0 if it may now."""
        moment = self.now() if now is None else now
        wait = 0.0
        for key in counted_as(client):
            clear_at = self._clear_at.get(key)
            if clear_at is not None:
                wait = max(wait, clear_at - (self.window - self.step_of(key)) - moment)
        return wait

    def failed(self, client: str, now: float | None = None) -> None:
        """Count a failed attempt of `client` (for every server on this spool, at the next
        write). Never raises for the database: a write that fails is logged and tried again."""
        moment = self.now() if now is None else now
        keys = counted_as(client)
        with self._lock:
            if keys[0] not in self._clear_at and self._too_many_new(moment):
                # refused from memory for one interval, and nothing written
                self._remember(keys[0], moment + self.window)
                return
            for key in keys:
                self._remember(key, max(self._clear_at.get(key, moment), moment) + self.step_of(key))
                self._pending[key] = self._pending.get(key, 0) + 1
            due = not self._flushing and moment - self._flushed_at >= self.flush_every
            self._forget_old(moment)
        if due:
            self.flush(now)

    def pending(self) -> int:
        """Keys whose failures this process has not written yet."""
        return len(self._pending)

    def flush(self, now: float | None = None) -> None:
        """Write the failures counted since the last write, in one transaction (keys in
        order, so two servers' writes never wait on each other in a cycle), and learn each
        key's shared time. A database error is logged in one line; the failures are kept for
        the next write."""
        with self._lock:
            if self._flushing or not self._pending:
                return
            self._flushing, pending, self._pending = True, self._pending, {}
        learnt: dict[str, float] = {}
        moment = self.now() if now is None else now
        db = self.spool.db   # its SQL that differs per engine: spool/*_operator.py
        try:
            with db.transaction():
                if now is None:
                    moment = self._database_now(db)
                db.auth_failures_drained(moment)
                learnt = db.auth_failures_added(moment, {   # in key order: no waits in a cycle
                    key: pending[key] * self.step_of(key) for key in sorted(pending)})
        except (*driver_errors(), SpoolFailure) as exc:   # the server away included
            log.warning("auth throttle: could not write %d addresses' failed attempts to the "
                        "spool (kept for the next try): %s", len(pending),
                        one_line(exc))
            self._keep(pending)
        except BaseException:
            self._keep(pending)
            with self._lock:
                self._flushing = False
            raise
        with self._lock:
            for key, clear_at in learnt.items():
                self._remember(key, max(clear_at, self._clear_at.get(key, clear_at)))
            self._flushed_at, self._flushing = moment, False

    def _keep(self, pending: dict[str, int]) -> None:
        """Put failures that were not written back, for the next write."""
        with self._lock:
            for key, count in pending.items():
                self._pending[key] = self._pending.get(key, 0) + count

    async def keep_flushing(self, stop: asyncio.Event) -> None:
        """A server's task: write what failed meanwhile every `flush_every` seconds, off the
        event loop, until `stop` is set."""
        while not stop.is_set():
            if self._pending:
                await asyncio.to_thread(self.flush)
            try:
                async with asyncio.timeout(self.flush_every):
                    await stop.wait()
            except TimeoutError:
                pass
        await asyncio.to_thread(self.flush)   # what failed last is not lost at a stop

    def _database_now(self, db: Any) -> float:
        """Now on the shared clock (the database's), and this host's skew from it."""
        moment = db.clock()
        self._skew = moment - time.time()
        return moment

    def _too_many_new(self, now: float) -> bool:
        second = int(now)
        if second != self._new_second:
            self._new_second, self._new_count = second, 0
        self._new_count += 1
        return self._new_count > self.new_per_second

    def _remember(self, key: str, clear_at: float) -> None:
        self._clear_at.pop(key, None)
        self._clear_at[key] = clear_at   # to the end: the most recent

    def _forget_old(self, now: float) -> None:
        """Drop the keys whose failures had drained when this process last heard of them
        (at the front, mostly), then the least recent ones while there are too many; never
        one with failures still to write. Walks only as far as it deletes (a flood keeps
        tens of thousands of addresses in memory: copying their list on every failure cost
        more than the failure)."""
        doomed: list[str] = []
        left = len(self._clear_at)
        for key, clear_at in self._clear_at.items():
            if clear_at > now and left <= self.max_addresses:
                break
            if key not in self._pending:
                doomed.append(key)
                left -= 1
        for key in doomed:
            del self._clear_at[key]


HOST = socket.gethostname()


def counted_as(client: str) -> tuple[str, ...]:
    """The keys a client's failures are counted under: its address; an IPv6 one's also its
    /64 network (at NEIGHBOURS times the limit). Addresses that are another machine on every
    host, and anything that is no address, carry this host's name."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return (f"not-an-address@{HOST}",)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return counted_as(str(address.ipv4_mapped))
        address = ipaddress.IPv6Address(int(address))    # without a %scope
        keys = (str(address), str(ipaddress.ip_network(f"{address}/64", strict=False)))
    else:
        keys = (str(address),)
    if address.is_loopback or address.is_link_local:
        return tuple(f"{key}@{HOST}" for key in keys)
    return keys

