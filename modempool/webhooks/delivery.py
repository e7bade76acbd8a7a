"""Delivering the outbox: signed POSTs under the Standard Webhooks convention, retried with
exponential backoff for at least a day.

Each attempt carries `webhook-id` (the outbox row's event id, the same on every retry),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` keyed with the secret's bytes). A 2xx
answer delivers; anything else (or no answer within `timeout`) schedules the next attempt
`base * 2**(n-1)` seconds later (capped at `cap`) until `give_up_after` has passed since
the event. Endpoints are worked on independently: while one is busy (slow or timing out),
the others go on, and sending SMS never waits for any of them (the worker runs beside it).
Kannel callbacks (their URLs given by senders) are made only to addresses the guard allows
(modempool/callback_guard.py), connected to the address it checked; one it refuses is given up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from modempool.callback_guard import CallbackAllow, CallbackRefused, guarded_transport
from modempool.logs import quiet_url_loggers
from modempool.spool.model import from_text, utcnow
from modempool.spool.unavailable import log_failure
from modempool.webhooks.store import Webhooks

log = logging.getLogger("modempool.webhooks")

#: How often a worker prunes the outbox (seconds).
PRUNE_EVERY = 3600.0


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    base: float = 5.0              # seconds before the second attempt
    cap: float = 3600.0            # longest wait between two attempts
    give_up_after: float = 26 * 3600.0   # no attempt is started this long after the event

    def next_attempt(self, attempts: int, created_at: datetime, now: datetime) -> datetime | None:
        """When to try again after `attempts` failed ones; None once the time is up."""
        delay = min(self.base * 2 ** max(attempts - 1, 0), self.cap)
        moment = now + timedelta(seconds=delay * random.uniform(0.9, 1.1))
        if moment - created_at > timedelta(seconds=self.give_up_after):
            return None
        return moment


class WebhookWorker:
    """Delivers due outbox rows until `stop` is set; several workers may share a spool file
    (rows are leased)."""

    def __init__(self, spool: Any, *, schedule: RetrySchedule | None = None, timeout: float = 10.0,
                 per_endpoint: int = 4, poll: float = 0.5,
                 keep: timedelta = timedelta(days=30),
                 callback_allow: CallbackAllow = CallbackAllow()) -> None:
        self.webhooks = Webhooks(spool)
        self.callback_allow = callback_allow   # where Kannel callbacks may go (callback_guard.py)
        self.schedule = schedule or RetrySchedule()
        self.timeout = timeout
        self.per_endpoint = per_endpoint
        self.poll = poll
        self.keep = keep
        self._pruned_at = float("-inf")
        self.wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0
        self.recorded = 0   # attempts made and written to the outbox
        self._recorded_changed = asyncio.Condition()
        self._busy: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        import httpx

        quiet_url_loggers()  # whoever set up logging: the URLs we call may hold secrets
        # Kannel callbacks, whose URLs senders give, go through the guard (connected to the
        # address checked); webhooks, which admins register, through a plain client.
        guarded = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                    transport=guarded_transport(self.callback_allow))
        async with guarded, httpx.AsyncClient(timeout=self.timeout,
                                              follow_redirects=False) as client:
            async with asyncio.TaskGroup() as tasks:
                while not stop.is_set():
                    await self._prune_now_and_then()
                    try:
                        rows = await asyncio.to_thread(
                            self.webhooks.claim_due, timedelta(seconds=self.timeout * 3 + 30),
                            self.per_endpoint, list(self._busy))
                        secrets = self.webhooks.secrets() if rows else {}
                    except Exception as exc:  # a locked database: the next round will do
                        log_failure(log, "could not read the webhook outbox", exc)
                        rows = []   # (claimed ones go again once their lease runs out)
                    if rows:
                        for row in rows:
                            self._busy[row["endpoint"]] = self._busy.get(row["endpoint"], 0) + 1
                            tasks.create_task(self._attempt(
                                guarded if row["webhook_id"] is None else client, row,
                                secrets.get(row["webhook_id"])))
                    self.wake.clear()
                    try:
                        async with asyncio.timeout(self.poll):
                            await _first(stop.wait(), self.wake.wait())
                    except TimeoutError:
                        pass

    async def _prune_now_and_then(self) -> None:
        """At start and then hourly: the deliveries older than `keep` that are over pruned."""
        if time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = time.monotonic()
        try:
            gone = await asyncio.to_thread(self.webhooks.prune, self.keep)
        except Exception as exc:  # a locked database: the next hour will do
            log_failure(log, "could not prune the webhook outbox", exc)
            return
        if gone:
            log.info("pruned %d delivered or given-up webhook deliveries older than %d days",
                     gone, self.keep.days)

    async def wait_recorded(self, count: int) -> None:
        """Until `count` attempts have been made and recorded (for whoever watches the worker)."""
        async with self._recorded_changed:
            await self._recorded_changed.wait_for(lambda: self.recorded >= count)

    async def _attempt(self, client: Any, row: dict[str, Any], secret: str | None) -> None:
        try:
            await self._attempt_and_record(client, row, secret)
        finally:
            async with self._recorded_changed:
                self.recorded += 1
                self._recorded_changed.notify_all()

    async def _attempt_and_record(self, client: Any, row: dict[str, Any],
                                  secret: str | None) -> None:
        status, error, refused = None, "", False
        try:
            if row["webhook_id"] is None:  # a Kannel dlr-url callback: a plain GET
                response = await client.get(row["url"])
            else:
                if secret is None:  # removed meanwhile
                    await asyncio.to_thread(self.webhooks.failed, row["id"], None, "webhook removed", None)
                    return
                body = row["payload"].encode("utf-8")
                stamp = int(time.time())
                response = await client.post(row["url"], content=body, headers={
                    "content-type": "application/json",
                    "user-agent": "modempool-webhooks",
                    "webhook-id": row["event_id"],
                    "webhook-timestamp": str(stamp),
                    "webhook-signature": sign(secret, row["event_id"], stamp, body),
                })
            status = response.status_code
            if 200 <= status < 300:
                self.delivered += 1
                try:
                    await asyncio.to_thread(self.webhooks.delivered, row["id"], status)
                except Exception as exc:   # its lease runs out: delivered again (at least once)
                    log_failure(log, f"webhook {row['event_id']} was delivered, but the outbox "
                                "could not record it; it goes again once its lease runs out", exc)
                return
            error = f"HTTP {status}"
        except CallbackRefused as exc:  # where it points now is not allowed: never tried again
            error, refused = str(exc), True
        except Exception as exc:  # connection refused, timeout, bad URL: all retried
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            self._release(row["endpoint"])
        self.failures += 1
        created = from_text(row["created_at"]) or utcnow()
        next_at = None if refused else self.schedule.next_attempt(
            row["attempts"] + 1, created, datetime.now(timezone.utc))
        log.info("webhook %s to %s: attempt %d failed (%s)%s", row["event_id"],
                 shown_url(row["url"]), row["attempts"] + 1, error,
                 "" if next_at else "; giving up")
        try:
            await asyncio.to_thread(self.webhooks.failed, row["id"], status, error, next_at)
        except Exception as exc:
            log_failure(log, "could not record a webhook attempt", exc)
        self.wake.set()

    def _release(self, endpoint: str) -> None:
        left = self._busy.get(endpoint, 1) - 1
        if left <= 0:
            self._busy.pop(endpoint, None)
            self.wake.set()
        else:
            self._busy[endpoint] = left


async def _first(*awaitables: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def shown_url(url: str) -> str:
    """Where a delivery went, for logs: scheme://host:port/path, without the user and password
    or the query (a dlr-url carries the Kannel password, a webhook URL often a token)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "") + parts.path
