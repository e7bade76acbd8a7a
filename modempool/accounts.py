"""API accounts: who may send through the pool, through which SIMs, how much, and which
messages each one may see.

An account has a role (admin: everything; sender: sends and sees its own messages; viewer:
sees its own messages, sends nothing), an optional list of SIMs it may send through, and
optional per-minute / per-day quotas. Its key is shown once when made or rotated and stored
only as a SHA-256 digest: keys are 32 random bytes, so a fast digest is as good as a slow one
and lets every request be checked in microseconds. Keys are compared with
`hmac.compare_digest` (constant time). A server may have a key that passed remembered for a
few seconds (`Accounts(spool, remember_for=5)`; by its digest, never the key itself), so that a
busy API does not read the accounts table on every request: `rotate` and `remove` forget at once
in the process that runs them, and a server notices another process's rotation within those
seconds.

These rules live here, in the library, so the HTTP API, the Kannel interface and any later
front end apply the same ones: `check_quota` runs inside the enqueue transaction,
so two concurrent requests cannot both slip under a quota.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from modempool.errors import NotFound, PoolError
from modempool.spool.model import to_text, utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'sender', 'viewer')),
    key_id      TEXT NOT NULL UNIQUE,     -- public part of the key, to find the account
    key_hash    TEXT NOT NULL,            -- SHA-256 hex of the whole key; the key is never stored
    sims        TEXT,                     -- JSON list of SIM names it may send through; NULL = any
    per_minute  INTEGER,
    per_day     INTEGER,
    created_at  TEXT NOT NULL,
    rotated_at  TEXT
);
-- Which account queued a message: `message_accounts`, one of the spool's own tables since its
-- schema version 12 (modempool/spool/schema.py), which keeps each account's counts by state.
"""

KEY_PREFIX = "mpk_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Role(str, Enum):
    ADMIN = "admin"
    SENDER = "sender"
    VIEWER = "viewer"

    def __str__(self) -> str:
        return self.value


class AccountError(PoolError):
    """An account that cannot be made or found as asked."""


class Forbidden(PoolError):
    """The account's role does not allow this operation."""

    code = "forbidden"


class QuotaExceeded(PoolError):
    """A send that would pass one of the account's quotas; the message names the limit."""

    code = "quota"


class SimNotAllowed(PoolError):
    """A send through a SIM the account may not use."""

    code = "sim_not_allowed"


@dataclass(frozen=True, slots=True)
class Account:
    """One API account (never holds its key)."""

    name: str
    role: Role
    sims: tuple[str, ...] | None = None
    per_minute: int | None = None
    per_day: int | None = None
    created_at: str | None = None
    rotated_at: str | None = None

    @property
    def sees_all(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def may_send(self) -> bool:
        return self.role in (Role.ADMIN, Role.SENDER)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role.value,
                "sims": list(self.sims) if self.sims is not None else None,
                "per_minute": self.per_minute, "per_day": self.per_day,
                "created_at": self.created_at, "rotated_at": self.rotated_at}

    @classmethod
    def from_row(cls, row: Any) -> Account:
        return cls(name=row["name"], role=Role(row["role"]),
                   sims=tuple(json.loads(row["sims"])) if row["sims"] else None,
                   per_minute=row["per_minute"], per_day=row["per_day"],
                   created_at=row["created_at"], rotated_at=row["rotated_at"])


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _new_key() -> tuple[str, str]:
    """(key_id, key): `mpk_<id>_<secret>`; the id finds the row, the digest proves the secret."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


class _VerifiedKeys:
    """Keys that passed recently: digest -> (account, spool, until). Process-wide, so that
    whichever `Accounts` object rotates or removes a key, every one forgets it. Bounded."""

    LIMIT = 4096

    def __init__(self) -> None:
        import threading

        self._entries: dict[str, tuple[Account, str, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, where: str, now: float) -> Account | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] != where or entry[2] <= now:
            return None
        return entry[0]

    def put(self, digest: str, account: Account, where: str, until: float) -> None:
        with self._lock:
            if len(self._entries) >= self.LIMIT:  # the oldest go first (insertion order)
                for stale in list(self._entries)[:self.LIMIT // 4]:
                    del self._entries[stale]
            self._entries[digest] = (account, where, until)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


_verified = _VerifiedKeys()


class Accounts:
    """The `accounts` table of a spool file: `Accounts(spool)`; `remember_for` seconds: how
    long a key that passed is taken without reading the table again (0: never)."""

    def __init__(self, spool: Any, *, remember_for: float = 0.0, config: Any = None) -> None:
        from modempool.webhooks.store import install

        self.spool = spool
        self.remember_for = remember_for
        self.config = config  # with it, an account's SIMs must be configured modems
        install(spool)  # accounts, message owners, opt-outs, webhooks and their triggers

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.spool.rows(sql, params)

    def add(self, name: str, role: Role | str, *, sims: Iterable[str] | None = None,
            per_minute: int | None = None, per_day: int | None = None) -> tuple[Account, str]:
        """Make an account; returns it and its key (shown once: only its digest is stored)."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise AccountError(f"account name {name!r}: use 1-64 letters, digits, '_', '.', '-'",
                               code="account_name", params={"name": name})
        try:
            role = Role(role)
        except ValueError:
            raise AccountError(f"role {role!r}: choose admin, sender or viewer",
                               code="account_role", params={"role": role}) from None
        sims_list = [s.strip() for s in (sims or []) if s.strip()]
        if self.config is not None:
            self.config.check_sims(sims_list)  # a SIM it cannot have would refuse every send
        for value, label in ((per_minute, "per-minute"), (per_day, "per-day")):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise AccountError(f"{label} quota must be a whole number of at least 1")
        key_id, key = _new_key()
        now = to_text(utcnow())
        with self.spool.transaction() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"account {name!r} exists (use rotate for a new key)",
                                   code="account_exists", params={"name": name})
            conn.execute(
                "INSERT INTO accounts (name, role, key_id, key_hash, sims, per_minute, per_day, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, role.value, key_id, _digest(key),
                 json.dumps(sims_list) if sims_list else None, per_minute, per_day, now))
        return self.get(name), key

    def get(self, name: str) -> Account:
        rows = self._rows("SELECT * FROM accounts WHERE name = ?", (name,)) \
            if _NAME.fullmatch(name or "") else []   # no account has another name (nor a NUL)
        if not rows:
            raise NotFound(f"no account named {name!r}", code="account_not_found",
                           params={"name": name})
        return Account.from_row(rows[0])

    def list(self) -> list[Account]:
        return [Account.from_row(r) for r in self._rows("SELECT * FROM accounts ORDER BY name")]

    def remove(self, name: str) -> None:
        with self.spool.transaction() as conn:
            if conn.execute("DELETE FROM accounts WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no account named {name!r}", code="account_not_found",
                               params={"name": name})
        _verified.forget()

    def rotate(self, name: str) -> str:
        """A new key for the account; the old one stops working at once."""
        key_id, key = _new_key()
        with self.spool.transaction() as conn:
            changed = conn.execute(
                "UPDATE accounts SET key_id = ?, key_hash = ?, rotated_at = ? WHERE name = ?",
                (key_id, _digest(key), to_text(utcnow()), name)).rowcount
        _verified.forget()
        if not changed:
            raise NotFound(f"no account named {name!r}", code="account_not_found",
                           params={"name": name})
        return key

    def authenticate(self, key: str) -> Account | None:
        """The account whose key this is, or None (same work whether the id exists or not)."""
        known = self.remembered(key)
        if known is not None:
            return known
        match = re.fullmatch(rf"{KEY_PREFIX}([0-9a-f]{{12}})_[A-Za-z0-9_-]+", key or "")
        rows = self._rows("SELECT * FROM accounts WHERE key_id = ?", (match.group(1),)) \
            if match else []
        return self._check(rows, key)

    def authenticate_name(self, name: str, key: str) -> Account | None:
        """The account `name` if `key` is its key (Kannel's username/password), else None."""
        known = self.remembered(key, name)
        if known is not None:
            return known
        rows = self._rows("SELECT * FROM accounts WHERE name = ?", (name,)) \
            if _NAME.fullmatch(name or "") else []   # no account has another name (nor a NUL)
        return self._check(rows, key)

    def remembered(self, key: str | None, name: str | None = None) -> Account | None:
        """The account of a key that passed in the last `remember_for` seconds (and is
        `name`'s, if given), from memory: no database read. None: ask `authenticate`."""
        if not key or not self.remember_for:
            return None
        account = _verified.get(_digest(key), self.spool.engine.where, time.monotonic())
        return account if account is not None and name in (None, account.name) else None

    def _check(self, rows: list[Any], key: str) -> Account | None:
        stored = rows[0]["key_hash"] if rows else "0" * 64
        digest = _digest(key or "")
        if not (rows and hmac.compare_digest(digest, stored)):
            return None
        account = Account.from_row(rows[0])
        if self.remember_for:
            _verified.put(digest, account, self.spool.engine.where,
                          time.monotonic() + self.remember_for)
        return account


# ---- the rules an account's operations obey (called inside the front door's transactions) ----

def sims_for_send(account: Account, asked: Sequence[str] | None) -> list[str] | None:
    """The SIMs a send may use: the asked ones if the account may use them all, else
    SimNotAllowed; none asked = the account's SIMs (None: any SIM)."""
    if not account.may_send:
        raise Forbidden(f"account {account.name!r} is a {account.role.value}: it may not send",
                        code="may_not_send", params={"account": account.name})
    if account.sims is None:
        return list(asked) if asked else None
    if not asked:
        return list(account.sims)
    refused = [s for s in asked if s not in account.sims]
    if refused:
        raise SimNotAllowed(f"account {account.name!r} may not send through "
                            f"{', '.join(refused)} (its SIMs: {', '.join(account.sims)})",
                            params={"account": account.name, "sims": ", ".join(refused),
                                    "allowed": ", ".join(account.sims)})
    return list(asked)


def quota_locks(account: Account) -> tuple[str, ...]:
    """The keys of `engine.lock_key` that `check_quota` takes for the account (none if it
    has no quota): a batch of several accounts' sends takes them all first, in one order."""
    if account.per_minute is None and account.per_day is None:
        return ()
    return (f"quota:{account.name}",)


def check_quota(engine: Any, conn: Any, account: Account, count: int, now: datetime,
                day_start: datetime) -> None:
    """QuotaExceeded if `count` more messages would pass the account's per-minute or per-day
    quota (counted from the messages it queued). Call it in the enqueue transaction, which
    records the messages' owner (`record_owner`): the account's quota lock is held until that
    commits, so two sends of one account, from any process or host, take turns between the
    count and the commit and cannot together pass the quota."""
    quota_use(engine, conn, account, now, day_start).refuse_beyond(count)


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """What an account had used of its quotas when its send began (`quota_use`): a send whose
    size is known only once written (a streamed batch) asks `refuse_beyond(count)` at its end,
    still in its transaction."""

    account: str
    used: tuple[tuple[int, int, str, str], ...]   # (limit, used, label, when) per quota

    def refuse_beyond(self, count: int) -> None:
        """QuotaExceeded if `count` more messages pass a quota."""
        for limit, used, label, when in self.used:
            if used + count > limit:
                raise QuotaExceeded(f"account {self.account!r} {label} quota is {limit}: {used} "
                                    f"queued {when}, {count} more asked; nothing was queued",
                                    code=f"quota_{label.replace('-', '_')}",
                                    params={"account": self.account, "limit": limit,
                                            "used": used, "count": count})


def quota_use(engine: Any, conn: Any, account: Account, now: datetime,
              day_start: datetime) -> QuotaUse:
    """The account's quota lock taken (held until `conn` commits) and what it has used of
    each quota; see `check_quota`."""
    checks = ((account.per_minute, now - timedelta(seconds=60), "per-minute", "in the last minute"),
              (account.per_day, day_start, "per-day", "today"))
    # The counts below are read once the lock is ours (an advisory lock on PostgreSQL;
    # SQLite's writers take turns anyway), so they hold the turn before ours.
    for key in quota_locks(account):
        engine.lock_key(conn, key)
    used = []
    for limit, since, label, when in checks:
        if limit is None:
            continue
        used.append((limit, conn.execute(
            "SELECT count(*) FROM message_accounts WHERE account = ? AND created_at >= ?",
            (account.name, to_text(since))).fetchone()[0], label, when))
    return QuotaUse(account.name, tuple(used))


def record_owner(spool: Any, account: Account, ids: Sequence[int], now: datetime) -> None:
    """Mark messages as queued by the account, in the transaction that queued them (ids it
    already owns stay as they are): `spool.scoped.own`."""
    spool.scoped.own(account.name, ids, now)


def namespaced_client_id(account: Account, client_id: str | None) -> str | None:
    """An idempotency key in the account's own namespace (two accounts may use the same one)."""
    return None if client_id is None else f"{account.name}:{client_id}"
