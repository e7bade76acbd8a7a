"""Webhook subscriptions and the durable outbox of their events.

Events are written by triggers (each engine's own, see `Engine.ensure_webhook_outbox`), so
each one is committed in the very transaction that makes the change it reports (a message
turning sent, delivered, failed or ambiguous; an SMS stored in `inbound`; a number added to
`optouts`): no change without its event, no event without its change, whichever process or
module made it. With no subscription the triggers
insert nothing. One outbox row is one delivery to one endpoint; its `event_id` is the
`webhook-id` header on every attempt, so a receiver can drop the duplicates that retries make.

Kannel `dlr-url` callbacks ride on the same outbox (rows without a webhook, `type`
`kannel.dlr`, sent as a plain GET, their payload the message's id): a message's callbacks
are delivered one at a time, in the order they were written.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from modempool.accounts import SCHEMA as ACCOUNTS_SCHEMA
from modempool.errors import NotFound, PoolError
from modempool.operator.optout import SCHEMA as OPTOUT_SCHEMA
from modempool.spool.model import to_text, utcnow
from modempool.spool.plain_text import refuse_nul

EVENT_TYPES = ("sms.received", "message.sent", "message.delivered", "message.failed",
               "message.ambiguous", "optout.added")

SCHEMA = """
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
    payload      TEXT NOT NULL,          -- the exact body, the same on every attempt (a
                                         -- Kannel callback, a GET: its message's id)
    created_at   TEXT NOT NULL,
    next_at      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    lease_until  TEXT,
    last_status  INTEGER,
    last_error   TEXT,
    delivered_at TEXT,
    subject      TEXT                    -- 'message:<id>': a message's events to one endpoint
                                         -- are delivered in order; NULL: no order
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (state, next_at);
-- a message's pending Kannel callbacks (their payload is its id), delivered oldest first
CREATE INDEX IF NOT EXISTS webhook_outbox_dlr ON webhook_outbox (payload, id)
    WHERE webhook_id IS NULL AND state = 'pending';
-- what was pruned from the outbox (`Webhooks.prune`), so that the counts never fall
CREATE TABLE IF NOT EXISTS webhook_outbox_pruned (
    state           TEXT PRIMARY KEY,    -- delivered or dead
    n               INTEGER NOT NULL,
    failed_attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kannel_dlr (
    message_id  INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,           -- with %d (status) and %p (phone) to fill in
    mask        INTEGER NOT NULL         -- Kannel dlr-mask: 1 delivered, 2 undelivered, 8 sent, 16 refused
);
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


def install(spool: Any) -> None:
    """Create the tables and the event triggers (and the tables the triggers read), once."""
    for script in (ACCOUNTS_SCHEMA, OPTOUT_SCHEMA, SCHEMA):
        spool.engine.ensure_schema(script)
    spool.engine.ensure_webhook_outbox()


def new_secret() -> str:
    """`whsec_` and 24 random bytes in base64 (the Standard Webhooks secret form)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def any_subscribed(spool: Any) -> bool:
    """Whether the spool has any webhook subscription (without creating the tables)."""
    if "webhooks" not in spool.table_names():  # either engine's catalogue
        return False
    return bool(spool.rows("SELECT 1 FROM webhooks LIMIT 1"))


class Webhooks:
    """Subscriptions and the outbox in a spool file: `Webhooks(spool)`."""

    def __init__(self, spool: Any) -> None:
        self.spool = spool
        install(spool)

    def add(self, url: str, events: Iterable[str], *, account: str | None = None) -> tuple[Webhook, str]:
        """Subscribe `url` to `events`; returns the webhook and its signing secret."""
        check_callback_url(url, "webhook URL", code="webhook_url")
        chosen = [e.strip() for e in events if e.strip()]
        unknown = [e for e in chosen if e not in EVENT_TYPES]
        if unknown or not chosen:
            raise PoolError(f"unknown event(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(EVENT_TYPES)}",
                            code="webhook_events" if unknown else "webhook_no_events",
                            params={"events": ", ".join(unknown),
                                    "choices": ", ".join(EVENT_TYPES)})
        webhook_id, secret = "wh_" + secrets.token_hex(8), new_secret()
        with self.spool.transaction() as conn:
            if account is not None and not conn.execute(
                    "SELECT 1 FROM accounts WHERE name = ?", (account,)).fetchone():
                raise NotFound(f"no account named {account!r}", code="account_not_found",
                               params={"name": account})
            conn.execute("INSERT INTO webhooks (id, url, events, account, secret, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (webhook_id, url, json.dumps(chosen), account, secret, to_text(utcnow())))
        _keep_private(self.spool.path)
        return self.get(webhook_id), secret

    def get(self, webhook_id: str) -> Webhook:
        rows = self.spool.rows("SELECT * FROM webhooks WHERE id = ?", (webhook_id,))
        if not rows:
            raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found",
                           params={"id": webhook_id})
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
                raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found",
                               params={"id": webhook_id})
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
        """Events by state (for metrics and readiness), those pruned from the outbox
        included: the delivered and given-up counts only rise."""
        out = {"pending": 0, "delivered": 0, "dead": 0}
        for row in self.spool.rows(
                "SELECT state, count(*) AS n FROM webhook_outbox GROUP BY state "
                "UNION ALL SELECT state, n FROM webhook_outbox_pruned"):
            out[row["state"]] += int(row["n"])
        return out

    def failed_attempts(self) -> int:
        """Delivery attempts that failed, ever (for metrics): the outbox's and the pruned."""
        return int(self.spool.rows(
            "SELECT coalesce(sum(attempts - CASE WHEN state = 'delivered' THEN 1 ELSE 0 END), 0) "
            "+ (SELECT coalesce(sum(failed_attempts), 0) FROM webhook_outbox_pruned) "
            "AS n FROM webhook_outbox")[0]["n"])

    def prune(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Delete delivered and given-up deliveries written more than `older_than` ago
        (`[webhooks] keep_days`), their numbers added to the pruned counts in the same
        transaction; pending ones stay whatever their age. Returns how many went."""
        cutoff = to_text((now or utcnow()) - older_than)
        final = "state IN ('delivered', 'dead') AND created_at < ?"
        with self.spool.transaction() as conn:
            gone = conn.execute(
                "SELECT state, count(*) AS n, sum(attempts - CASE WHEN state = 'delivered' "
                f"THEN 1 ELSE 0 END) AS failed FROM webhook_outbox WHERE {final} GROUP BY state",
                (cutoff,)).fetchall()
            gone = [(row[0], int(row[1]), int(row[2])) for row in gone]
            for state, n, failed in gone:
                conn.execute(
                    "INSERT INTO webhook_outbox_pruned AS kept (state, n, failed_attempts) "
                    "VALUES (?, ?, ?) ON CONFLICT (state) DO UPDATE SET n = kept.n + excluded.n, "
                    "failed_attempts = kept.failed_attempts + excluded.failed_attempts",
                    (state, n, failed))
            conn.execute(f"DELETE FROM webhook_outbox WHERE {final}", (cutoff,))
        return sum(n for _, n, _ in gone)

    def add_dlr(self, conn: Any, ids: Sequence[int], url: str, mask: int) -> None:
        """Kannel dlr-url callbacks for these messages (inside the enqueue transaction)."""
        check_callback_url(url, "dlr-url")
        conn.executemany("INSERT INTO kannel_dlr (message_id, url, mask) VALUES (?, ?, ?) "
                         "ON CONFLICT (message_id) DO UPDATE SET url = excluded.url, "
                         "mask = excluded.mask", [(i, url, mask) for i in ids])

    # ---- the delivery side ----------------------------------------------------------------

    def claim_due(self, owner_lease: timedelta, per_endpoint: int, busy: Iterable[str],
                  now: datetime | None = None) -> list[dict[str, Any]]:
        """Lease due rows, at most `per_endpoint` per endpoint and none for a `busy` one (an
        endpoint still working on earlier rows): a slow endpoint holds back only itself."""
        moment = now or utcnow()
        stamp, until = to_text(moment), to_text(moment + owner_lease)
        busy = set(busy)
        with self.spool.transaction():
            # A message's events to one endpoint go in order: one waits while an earlier one of
            # the same subject to the same endpoint is pending (on its way or waiting for a
            # retry), until that one is delivered or given up. Held rows take no place in an
            # endpoint's share, so other messages' events go on meanwhile.
            due = [dict(r) for r in self.spool.rows(
                "SELECT * FROM (SELECT *, coalesce(webhook_id, url) AS endpoint, row_number() "
                "OVER (PARTITION BY coalesce(webhook_id, url) ORDER BY next_at, id) AS rank "
                "FROM webhook_outbox AS o WHERE state = 'pending' AND next_at <= ? "
                "AND (lease_until IS NULL OR lease_until < ?) AND webhook_id IS NOT NULL "
                "AND (subject IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_outbox AS e "
                "WHERE e.webhook_id = o.webhook_id AND e.subject = o.subject "
                "AND e.state = 'pending' AND e.id < o.id))) "
                "AS due WHERE rank <= ?", (stamp, stamp, per_endpoint))]
            # A Kannel receiver keeps a message's last status: its callbacks go one at a time,
            # oldest first (8 "sent" before 1 "delivered"), a later one not before an earlier
            # one is delivered or given up, even while that one waits for its retry. (Rows of
            # a spool from before, without the message id, are each their own.)
            due += [dict(r) for r in self.spool.rows(
                "SELECT *, CASE WHEN payload = '' THEN url ELSE 'dlr:' || payload END "
                "AS endpoint FROM webhook_outbox AS o WHERE webhook_id IS NULL "
                "AND state = 'pending' AND next_at <= ? AND (lease_until IS NULL OR lease_until < ?) "
                "AND (payload = '' OR NOT EXISTS (SELECT 1 FROM webhook_outbox AS e "
                "WHERE e.webhook_id IS NULL AND e.state = 'pending' AND e.payload = o.payload "
                "AND e.id < o.id))", (stamp, stamp))]
            due = [r for r in due if r["endpoint"] not in busy]
            if not due:
                return []
            # Another worker (a second server on the same spool) may have leased some of them
            # meanwhile: the lease is taken only where it is still free, and those rows kept.
            taken = {r[0] for r in self.spool.rows(
                f"UPDATE webhook_outbox SET lease_until = ? WHERE id IN "
                f"({', '.join('?' for _ in due)}) AND state = 'pending' "
                "AND (lease_until IS NULL OR lease_until < ?) RETURNING id",
                (until, *(r["id"] for r in due), stamp))}
        return [r for r in due if r["id"] in taken]

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


def _webhook(row: Any) -> Webhook:
    return Webhook(id=row["id"], url=row["url"], events=tuple(json.loads(row["events"])),
                   account=row["account"], created_at=row["created_at"])


def _keep_private(path: Any) -> None:
    """The spool file now holds signing secrets: readable by its owner only (SQLite; a
    PostgreSQL spool is the server's to protect)."""
    if path is None:
        return
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(f"{path}{suffix}", 0o600)
        except OSError:
            pass


def check_callback_url(url: str, what: str, *, code: str = "callback_url") -> None:
    """An http(s) URL with a host and a valid port, or a `PoolError` naming `what` (and `code`
    with the URL, for a translation)."""
    refuse_nul(f"the {what}", url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PoolError(f"{what} {url!r}: give an http:// or https:// URL with a host",
                        code=code, params={"url": url})
