"""Console sign-in: account passwords and browser sessions, stored in the spool.

A password is an alternative to the account's API key for people who sign in to the web
console; the admin sets it with `modempool accounts passwd NAME`. It is stored as a scrypt
hash with its own salt (people choose weak passwords, so a slow hash is worth it here, unlike
API keys, which are random). A session is a random token given to the browser in a cookie;
the spool keeps only its SHA-256 digest, the account, a CSRF token for the session's forms and
when it expires. Signing out deletes the row; an expired row is refused and swept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modempool.accounts import Account, AccountError, Accounts
from modempool.errors import NotFound
from modempool.spool.model import from_text, to_text, utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS account_passwords (
    name     TEXT PRIMARY KEY,
    born     TEXT NOT NULL,            -- the account's created_at: a re-made account has none
    hash     TEXT NOT NULL,            -- scrypt$n$r$p$salt_hex$digest_hex
    set_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash  TEXT PRIMARY KEY,      -- SHA-256 hex of the cookie's token
    account     TEXT NOT NULL,
    born        TEXT NOT NULL,         -- the account's created_at, as for passwords
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions (expires_at)
"""

MIN_PASSWORD = 8
_SCRYPT = (2**14, 8, 1)   # n, r, p: ~16 MiB and a few tens of ms per check


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: the account and the token its forms must carry."""

    account: Account
    csrf: str
    expires_at: datetime


def _hash_password(password: str, salt: bytes | None = None,
                   params: tuple[int, int, int] = _SCRYPT) -> str:
    salt = salt or secrets.token_bytes(16)
    n, r, p = params
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                            maxmem=64 * 1024 * 1024)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def _password_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, _digest = stored.split("$")
        again = _hash_password(password, bytes.fromhex(salt), (int(n), int(r), int(p)))
    except ValueError:
        return False
    return hmac.compare_digest(again, stored)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """Passwords and console sessions of a spool's accounts: `Sessions(spool)`."""

    def __init__(self, spool: Any, accounts: Accounts | None = None) -> None:
        self.spool = spool
        self.accounts = accounts or Accounts(spool)
        spool.engine.ensure_schema(SCHEMA)

    # ---- passwords -------------------------------------------------------------------------

    def set_password(self, name: str, password: str) -> None:
        """Set (or replace) the console password of account `name`."""
        account = self.accounts.get(name)   # NotFound for an unknown account
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise AccountError(f"a password needs at least {MIN_PASSWORD} characters",
                               code="password_short", params={"min": MIN_PASSWORD})
        stored = _hash_password(password)
        with self.spool.transaction() as conn:
            conn.execute("INSERT INTO account_passwords (name, born, hash, set_at) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                         "born = excluded.born, hash = excluded.hash, set_at = excluded.set_at",
                         (name, account.created_at, stored, to_text(utcnow())))

    def check(self, name: str, secret: str) -> Account | None:
        """The account if `secret` is its API key or its console password, else None."""
        account = self.accounts.authenticate_name(name, secret)
        if account is not None:
            return account
        rows = self.spool.rows("SELECT born, hash FROM account_passwords WHERE name = ?", (name,))
        stored = rows[0]["hash"] if rows else _DUMMY
        if not (_password_matches(secret or "", stored) and rows):
            return None
        try:
            account = self.accounts.get(name)
        except NotFound:
            return None
        return account if account.created_at == rows[0]["born"] else None

    # ---- sessions --------------------------------------------------------------------------

    def open(self, account: Account, lifetime: timedelta) -> tuple[str, Session]:
        """A new session for `account`; returns the cookie's token (shown once) and the session."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = utcnow()
        expires = now + lifetime
        with self.spool.transaction() as conn:
            conn.execute("DELETE FROM console_sessions WHERE expires_at < ?", (to_text(now),))
            conn.execute("INSERT INTO console_sessions (token_hash, account, born, csrf, "
                         "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (_token_digest(token), account.name, account.created_at, csrf,
                          to_text(now), to_text(expires)))
        return token, Session(account, csrf, expires)

    def resolve(self, token: str | None) -> Session | None:
        """The live session of a cookie's token; None when unknown, expired or its account gone."""
        if not token:
            return None
        rows = self.spool.rows("SELECT account, born, csrf, expires_at FROM console_sessions "
                               "WHERE token_hash = ?", (_token_digest(token),))
        if not rows:
            return None
        expires = from_text(rows[0]["expires_at"])
        if expires is None or expires <= utcnow():
            self.close(token)
            return None
        try:
            account = self.accounts.get(rows[0]["account"])
        except NotFound:
            return None
        if account.created_at != rows[0]["born"]:
            return None
        return Session(account, rows[0]["csrf"], expires)

    def close(self, token: str | None) -> None:
        """Sign out: the token stops working at once."""
        if token:
            with self.spool.transaction() as conn:
                conn.execute("DELETE FROM console_sessions WHERE token_hash = ?",
                             (_token_digest(token),))


# compared against when the account has no password, so both cases do the same work
_DUMMY = _hash_password("no password set")
