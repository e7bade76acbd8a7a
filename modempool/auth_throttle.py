"""Failed authentication attempts per client address, counted in the spool, so that every
server on it (`serve`, the sidecar of `run --http`, several boxes on one PostgreSQL) counts
an address's failures together: guesses spread over N servers do not get N times the limit.

An address may fail `limit` times at once, then once per `window / limit` seconds (a generic
cell rate algorithm: one time per address, `clear_at`, when its failures will have drained;
each failure moves it on by that interval, from now or from where it was). A failure is one
upsert on the spool, which also deletes the rows that have drained (they say nothing), so the
table holds only the addresses that failed within the last `window`: a flood of addresses
grows it by no more than its own request rate times the window.

A request whose key passes writes nothing and reads nothing: a server refuses an address from
what it learnt at its own last failure from it (the shared `clear_at` the upsert returned).
So with N servers an address gets at most N - 1 attempts beyond the limit (each server lets
one through before it has heard of the others' count), and each of those is counted too.

An IPv6 address is counted by its /64 network: one host or LAN is given a /64, and counting
its 2^64 addresses apart would give one attacker as many limits (and rows).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_failures (
    client    TEXT PRIMARY KEY,            -- the address whose attempts failed
    clear_at  DOUBLE PRECISION NOT NULL    -- Unix time when its failures have drained
);
CREATE INDEX IF NOT EXISTS auth_failures_by_time ON auth_failures (clear_at)
"""

_FAILED = (
    "INSERT INTO auth_failures (client, clear_at) VALUES (:client, :now + :step) "
    "ON CONFLICT (client) DO UPDATE SET clear_at = :step + CASE "
    "WHEN auth_failures.clear_at > :now THEN auth_failures.clear_at ELSE :now END "
    "RETURNING clear_at")


class FailureThrottle:
    """`FailureThrottle(spool, limit=10, window=60)`: `retry_after(client)` before checking a
    key (memory only: no I/O, fit for the event loop), `failed(client)` after a wrong one (a
    write to the spool: call it off the event loop). `max_addresses` bounds what one process
    remembers (the least recently failing forgotten first)."""

    def __init__(self, spool: Any, limit: int = 10, window: float = 60.0,
                 max_addresses: int = 100_000) -> None:
        self.spool, self.limit, self.window = spool, limit, window
        self.max_addresses = max_addresses
        self.step = window / limit
        spool.engine.ensure_schema(SCHEMA)
        # address -> the shared clear_at learnt at this process's last failure from it,
        # in order of those failures (the most recent last)
        self._learnt: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._learnt)

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds until `client` may try again; 0 if it may now."""
        moment = time.time() if now is None else now
        clear_at = self._learnt.get(counted_as(client))
        if clear_at is None:
            return 0.0
        return max(0.0, clear_at - (self.window - self.step) - moment)

    def failed(self, client: str, now: float | None = None) -> None:
        """Count a failed attempt of `client` (for every server on this spool)."""
        moment, client = time.time() if now is None else now, counted_as(client)
        with self.spool.transaction() as conn:
            conn.execute("DELETE FROM auth_failures WHERE clear_at <= ?", (moment,))
            clear_at = conn.execute(_FAILED, {"client": client, "now": moment,
                                              "step": self.step}).fetchone()[0]
        with self._lock:
            self._learnt.pop(client, None)
            self._learnt[client] = float(clear_at)   # to the end: the most recent
            self._forget_old(moment)

    def _forget_old(self, now: float) -> None:
        """Drop the addresses whose failures had drained when this process last heard of
        them (at the front, mostly), then the least recent ones while there are too many."""
        for client in list(self._learnt):
            if self._learnt[client] > now and len(self._learnt) <= self.max_addresses:
                break
            del self._learnt[client]


def counted_as(client: str) -> str:
    """What a client's failures are counted under: its address, an IPv6 one's /64 network."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client   # not an address ("unknown", a test client's name)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
