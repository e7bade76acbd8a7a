"""Webhook subscriptions and the durable outbox of their events.

Events are written by SQLite triggers, so each one is committed in the very transaction that
makes the change it reports (a message turning sent, delivered, failed or ambiguous; an SMS
stored in `inbound`; a number added to `optouts`): no change without its event, no event
without its change, whichever process or module made it. With no subscription the triggers
insert nothing. One outbox row is one delivery to one endpoint; its `event_id` is the
`webhook-id` header on every attempt, so a receiver can drop the duplicates that retries make.

Kannel `dlr-url` callbacks ride on the same outbox (rows without a webhook, `type`
`kannel.dlr`, sent as a plain GET).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from modempool.accounts import SCHEMA as ACCOUNTS_SCHEMA
from modempool.accounts import _statements
from modempool.errors import NotFound, PoolError
from modempool.operator.optout import SCHEMA as OPTOUT_SCHEMA
from modempool.spool.model import to_text, utcnow

EVENT_TYPES = ("sms.received", "message.sent", "message.delivered", "message.failed",
               "message.ambiguous", "optout.added")

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_NEW_ID = "'msg_' || lower(hex(randomblob(12)))"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,           -- JSON list of event types
    account     TEXT,                    -- only this account's messages; NULL = all
    secret      TEXT NOT NULL,           -- whsec_...: kept to sign (the spool file is 0600)
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,   -- the webhook-id header, the same on every attempt
    webhook_id   TEXT,                   -- NULL: a Kannel dlr-url callback
    url          TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,          -- the exact body, the same on every attempt
    created_at   TEXT NOT NULL,
    next_at      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    lease_until  TEXT,
    last_status  INTEGER,
    last_error   TEXT,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (state, next_at);
CREATE TABLE IF NOT EXISTS kannel_dlr (
    message_id  INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,           -- with %d (status) and %p (phone) to fill in
    mask        INTEGER NOT NULL         -- Kannel dlr-mask: 1 delivered, 2 undelivered, 8 sent, 16 refused
);
CREATE TRIGGER IF NOT EXISTS webhook_message_state AFTER UPDATE OF state ON messages
WHEN new.state != old.state AND new.state IN ('sent', 'delivered', 'failed', 'ambiguous')
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'message.' || new.state,
        json_object('type', 'message.' || new.state, 'timestamp', {_NOW}, 'data', json_object(
            'id', new.id, 'to', new.to_number, 'state', new.state, 'sim', new.sim,
            'parts', new.parts_total, 'attempts', new.attempts, 'error', new.error,
            'account', (SELECT account FROM message_accounts WHERE message_id = new.id),
            'created_at', new.created_at, 'sent_at', new.sent_at,
            'delivered_at', new.delivered_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'message.' || new.state)
      AND (w.account IS NULL
           OR w.account = (SELECT account FROM message_accounts WHERE message_id = new.id));
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, NULL,
        replace(replace(d.url, '%d', c.code), '%p', replace(new.to_number, '+', '%2B')),
        'kannel.dlr', '', {_NOW}, {_NOW}
    FROM kannel_dlr d, (SELECT CASE new.state WHEN 'delivered' THEN 1 WHEN 'sent' THEN 8
        WHEN 'failed' THEN CASE WHEN new.sent_at IS NULL THEN 16 ELSE 2 END
        ELSE 0 END AS code) c
    WHERE d.message_id = new.id AND (d.mask & c.code) != 0;
END;
CREATE TRIGGER IF NOT EXISTS webhook_inbound AFTER INSERT ON inbound
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'sms.received',
        json_object('type', 'sms.received', 'timestamp', {_NOW}, 'data', json_object(
            'id', new.id, 'from', new.sender, 'sim', new.sim, 'text', new.text,
            'parts', new.parts, 'complete', json(CASE new.complete WHEN 1 THEN 'true' ELSE 'false' END),
            'received_at', new.received_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'sms.received')
      AND (w.account IS NULL OR EXISTS (
          SELECT 1 FROM accounts a WHERE a.name = w.account AND (a.role = 'admin'
              OR a.sims IS NULL OR EXISTS (SELECT 1 FROM json_each(a.sims) WHERE value = new.sim))));
END;
CREATE TRIGGER IF NOT EXISTS webhook_optout AFTER INSERT ON optouts
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'optout.added',
        json_object('type', 'optout.added', 'timestamp', {_NOW}, 'data', json_object(
            'number', new.number, 'keyword', new.keyword, 'source', new.source,
            'inbound_id', new.inbound_id, 'created_at', new.created_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'optout.added');
END
"""


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    account: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "account": self.account, "created_at": self.created_at}


def install(conn: sqlite3.Connection) -> None:
    """Create the tables and triggers (and the tables the triggers read)."""
    for script in (ACCOUNTS_SCHEMA, OPTOUT_SCHEMA):
        for statement in _statements(script):
            conn.execute(statement)
    for statement in _trigger_aware_statements(SCHEMA):
        conn.execute(statement)


def _trigger_aware_statements(script: str) -> list[str]:
    """Split on `;` except inside CREATE TRIGGER ... END (whose body has its own `;`)."""
    out, current, in_trigger = [], [], False
    for line in script.splitlines():
        line = line.split("--", 1)[0].rstrip()
        if not line.strip():
            continue
        current.append(line)
        stripped = line.strip()
        if stripped.upper().startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if stripped.upper() in ("END;", "END"):
                out.append("\n".join(current).rstrip(";"))
                current, in_trigger = [], False
        elif stripped.endswith(";"):
            out.append("\n".join(current).rstrip(";"))
            current = []
    if current:
        out.append("\n".join(current).rstrip(";"))
    return [s for s in out if s.strip()]


def new_secret() -> str:
    """`whsec_` and 24 random bytes in base64 (the Standard Webhooks secret form)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


class Webhooks:
    """Subscriptions and the outbox in a spool file: `Webhooks(spool)`."""

    def __init__(self, spool: Any) -> None:
        self.spool = spool
        with spool.transaction() as conn:
            install(conn)

    def add(self, url: str, events: Iterable[str], *, account: str | None = None) -> tuple[Webhook, str]:
        """Subscribe `url` to `events`; returns the webhook and its signing secret."""
        check_callback_url(url, "webhook URL")
        chosen = [e.strip() for e in events if e.strip()]
        unknown = [e for e in chosen if e not in EVENT_TYPES]
        if unknown or not chosen:
            raise PoolError(f"unknown event(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(EVENT_TYPES)}")
        webhook_id, secret = "wh_" + secrets.token_hex(8), new_secret()
        with self.spool.transaction() as conn:
            if account is not None and not conn.execute(
                    "SELECT 1 FROM accounts WHERE name = ?", (account,)).fetchone():
                raise NotFound(f"no account named {account!r}")
            conn.execute("INSERT INTO webhooks (id, url, events, account, secret, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (webhook_id, url, json.dumps(chosen), account, secret, to_text(utcnow())))
        _keep_private(self.spool.path)
        return self.get(webhook_id), secret

    def get(self, webhook_id: str) -> Webhook:
        rows = self.spool.rows("SELECT * FROM webhooks WHERE id = ?", (webhook_id,))
        if not rows:
            raise NotFound(f"no webhook {webhook_id!r}")
        return _webhook(rows[0])

    def list(self, account: str | None = None) -> list[Webhook]:
        sql, params = "SELECT * FROM webhooks", []
        if account is not None:
            sql, params = sql + " WHERE account = ?", [account]
        return [_webhook(r) for r in self.spool.rows(sql + " ORDER BY created_at", params)]

    def remove(self, webhook_id: str) -> None:
        """Unsubscribe; its undelivered events are dropped (marked dead)."""
        with self.spool.transaction() as conn:
            if conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount == 0:
                raise NotFound(f"no webhook {webhook_id!r}")
            conn.execute("UPDATE webhook_outbox SET state = 'dead', last_error = 'webhook removed' "
                         "WHERE webhook_id = ? AND state = 'pending'", (webhook_id,))

    def secrets(self) -> dict[str, str]:
        """webhook id -> secret, for the delivery worker (never printed)."""
        return {r["id"]: r["secret"] for r in self.spool.rows("SELECT id, secret FROM webhooks")}

    def log(self, webhook_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest outbox rows (deliveries), newest first."""
        sql, params = ("SELECT id, event_id, webhook_id, url, type, state, attempts, created_at, "
                       "next_at, last_status, last_error, delivered_at FROM webhook_outbox"), []
        if webhook_id is not None:
            sql, params = sql + " WHERE webhook_id = ?", [webhook_id]
        return [dict(r) for r in self.spool.rows(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])]

    def counts(self) -> dict[str, int]:
        """Outbox rows by state (for metrics and readiness)."""
        out = {"pending": 0, "delivered": 0, "dead": 0}
        for row in self.spool.rows("SELECT state, count(*) AS n FROM webhook_outbox GROUP BY state"):
            out[row["state"]] = row["n"]
        return out

    def add_dlr(self, conn: sqlite3.Connection, ids: Sequence[int], url: str, mask: int) -> None:
        """Kannel dlr-url callbacks for these messages (inside the enqueue transaction)."""
        check_callback_url(url, "dlr-url")
        conn.executemany("INSERT OR REPLACE INTO kannel_dlr (message_id, url, mask) VALUES (?, ?, ?)",
                         [(i, url, mask) for i in ids])

    # ---- the delivery side ----------------------------------------------------------------

    def claim_due(self, owner_lease: timedelta, per_endpoint: int, busy: Iterable[str],
                  now: datetime | None = None) -> list[dict[str, Any]]:
        """Lease due rows, at most `per_endpoint` per endpoint and none for a `busy` one (an
        endpoint still working on earlier rows): a slow endpoint holds back only itself."""
        moment = now or utcnow()
        stamp, until = to_text(moment), to_text(moment + owner_lease)
        with self.spool.transaction() as conn:
            cursor = conn.cursor()
            cursor.row_factory = sqlite3.Row
            rows = cursor.execute(
                "SELECT * FROM (SELECT *, coalesce(webhook_id, url) AS endpoint, row_number() "
                "OVER (PARTITION BY coalesce(webhook_id, url) ORDER BY next_at, id) AS rank "
                "FROM webhook_outbox WHERE state = 'pending' AND next_at <= ? "
                "AND (lease_until IS NULL OR lease_until < ?)) "
                "WHERE rank <= ? AND endpoint NOT IN (SELECT value FROM json_each(?))",
                (stamp, stamp, per_endpoint, json.dumps(sorted(busy)))).fetchall()
            conn.executemany("UPDATE webhook_outbox SET lease_until = ? WHERE id = ?",
                             [(until, r["id"]) for r in rows])
        return [dict(r) for r in rows]

    def next_due(self) -> str | None:
        rows = self.spool.rows("SELECT min(next_at) AS t FROM webhook_outbox WHERE state = 'pending'")
        return rows[0]["t"] if rows else None

    def delivered(self, row_id: int, status: int) -> None:
        now = to_text(utcnow())
        with self.spool.transaction() as conn:
            conn.execute("UPDATE webhook_outbox SET state = 'delivered', attempts = attempts + 1, "
                         "last_status = ?, last_error = NULL, delivered_at = ?, lease_until = NULL "
                         "WHERE id = ?", (status, now, row_id))

    def failed(self, row_id: int, status: int | None, error: str, next_at: datetime | None) -> None:
        """One failed attempt; `next_at` None gives up (the row is dead)."""
        with self.spool.transaction() as conn:
            conn.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_status = ?, last_error = ?, "
                "lease_until = NULL, state = ?, next_at = coalesce(?, next_at) WHERE id = ?",
                (status, error[:500], "pending" if next_at else "dead", to_text(next_at), row_id))


def _webhook(row: sqlite3.Row) -> Webhook:
    return Webhook(id=row["id"], url=row["url"], events=tuple(json.loads(row["events"])),
                   account=row["account"], created_at=row["created_at"])


def _keep_private(path: Any) -> None:
    """The spool file now holds signing secrets: readable by its owner only."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(f"{path}{suffix}", 0o600)
        except OSError:
            pass


def check_callback_url(url: str, what: str) -> None:
    """An http(s) URL with a host and a valid port, or a `PoolError` naming `what`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PoolError(f"{what} {url!r}: give an http:// or https:// URL with a host")
