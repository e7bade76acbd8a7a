"""What one API account sends (`account_pool.sending`): through its SIMs, within its quota,
its idempotency keys its own, its messages recorded as its own, all in one transaction; and
the recipients a person typed (numbers, contact names, `@group`s).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.account_rules import quota_day_start
from modempool.accounts import (Account, check_quota, namespaced_client_id, quota_locks,
                                quota_use, record_owner, sims_for_send)
from modempool.batch_send import fan_out
from modempool.errors import NotFound, PoolError
from modempool.spool.model import utcnow
from modempool.spool.plain_text import refuse_nul


@dataclass(frozen=True, slots=True)
class Queued:
    """One message as a send answers it."""

    id: int
    to: str
    state: str
    parts: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.to, "state": self.state, "parts": self.parts}


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    """What a streamed send queued (`AccountSending.send_chunks`): the messages' ids in the
    order of their numbers, packed (an `array`), and the parts each message takes. Its
    messages are read back a page at a time (`AccountSending.queued_pages`)."""

    ids: array
    parts: int

    def __len__(self) -> int:
        return len(self.ids)


class AccountSending:
    """Sending as one account: `send`, `plan_send`, `send_chunks`, `recipients`."""

    def __init__(self, pool: Any, account: Account) -> None:
        self.pool = pool            # the front door, modempool.Pool
        self.spool = pool.spool
        self.config = pool.config
        self.account = account

    def send(self, to: Iterable[str], text: str, *, not_before: datetime | None = None,
             expires_at: datetime | None = None, priority: int = 0,
             sims: Sequence[str] | None = None, client_id: str | None = None,
             dlr: tuple[str, int] | None = None) -> list[Queued]:
        """Queue `text` to every number of `to`, all or nothing; the same `client_id` again
        returns the messages of the first call. `dlr` = (url, mask): Kannel callbacks."""
        return self.plan_send(to, text, not_before=not_before, expires_at=expires_at,
                              priority=priority, sims=sims, client_id=client_id, dlr=dlr)()

    def plan_send(self, to: Iterable[str], text: str, *, not_before: datetime | None = None,
                  expires_at: datetime | None = None, priority: int = 0,
                  sims: Sequence[str] | None = None, client_id: str | None = None,
                  dlr: tuple[str, int] | None = None) -> PlannedSend:
        """`send` in two steps (`PlannedSend`), for a caller that writes many sends in one
        transaction and checks each before taking the write lock (group_commit.py)."""
        return PlannedSend(self, to if isinstance(to, list) else list(to), text,
                           dict(at=not_before, expires=expires_at, priority=priority),
                           list(sims) if sims else None, client_id, dlr)

    def send_chunks(self, chunks: Iterable[Sequence[str]], text: str, *,
                    not_before: datetime | None = None, expires_at: datetime | None = None,
                    priority: int = 0, sims: Sequence[str] | None = None,
                    client_id: str | None = None, count: int | None = None) -> QueuedBatch:
        """`send` for a batch too big to hold as Python objects (100,000 numbers), its numbers
        given in chunks that are read one at a time (`Pool.queue_chunks`), in one transaction
        with the quota, the owner and the idempotency key, as `send`. The quota counts the
        messages new to this call (`charged_before_writing`): without a `client_id`, every one,
        so a batch whose size is known (`count`, its numbers) is refused before anything is
        written; with one, a retry finds its messages and costs nothing, so the quota is
        checked once the batch is written, before the commit. A refusal names the first bad
        number by its row (`RowError`); nothing is queued."""
        from modempool.spool.sendable import check_text

        account, spool = self.account, self.spool
        allowed_sims = sims_for_send(account, sims)
        parts = check_text(text, spool.messages.max_parts)
        now = utcnow()
        key = namespaced_client_id(account, client_id)
        with spool.transaction() as conn:
            quota = quota_use(spool.engine, conn, account, now, quota_day_start(now, self.config.tz))
            charged = charged_before_writing(key, count)
            if charged is not None:
                quota.refuse_beyond(charged)
            queued = self.pool.queue_chunks(
                chunks, text, client_id=key,
                at=not_before, expires=expires_at, priority=priority, sims=allowed_sims or (),
                on_write=lambda conn, ids: record_owner(spool, account, ids, now))
            if charged is None:
                quota.refuse_beyond(queued.fresh)
        return QueuedBatch(queued.ids, parts)

    def queued_pages(self, batch: QueuedBatch, size: int = 2000) -> Iterator[list[Queued]]:
        """The messages of a streamed send as they are now, `size` at a time, in its order:
        each page read when asked for, so the answer to a 100,000-recipient send is never
        held whole."""
        messages = self.spool.messages
        for start in range(0, len(batch.ids), size):
            page = batch.ids[start:start + size].tolist()
            found = messages.recipients_and_states(page)
            yield [Queued(i, *found[i], batch.parts) for i in page]

    def recipients(self, text: str) -> list[str]:
        """The numbers a person typed: phone numbers, contact names and `@group`s, separated
        by commas, semicolons or new lines; each number once, in order. A name or group that
        is not in the address book is a NotFound naming it."""
        from modempool.numbers import normalise
        from modempool.operator.contacts import Selection

        book = self.pool.contacts
        out: list[str] = []
        for token in (t.strip() for t in re.split(r"[,;，；\n]+", text or "")):
            if not token:
                continue
            if token.startswith("@"):
                found = [c.number for c in book.select(Selection((token[1:].strip(),)))]
            elif re.fullmatch(r"[+\d][\d\s()-]*", token):
                found = [normalise(token, self.config.region)]
            else:
                found = [c.number for c in book.list(search=token) if c.name == token]
                if not found:
                    raise NotFound(f"{token}: no contact with this name (a group is @name)",
                                   code="contact_name_not_found", params={"name": token})
            out += [n for n in found if n not in out]
        if not out:
            raise PoolError("no recipient given", code="no_recipient")
        return out


def charged_before_writing(client_id: str | None, count: int | None) -> int | None:
    """What a send of `count` messages costs of its account's quota, when that is known before
    any is written: a send's quota counts only the messages new to it, and without an
    idempotency key every message is new (none can be a retry). None when it is known only
    once written (a key, or an unknown count): then the messages the call found new count."""
    return count if client_id is None else None


class PlannedSend:
    """One account's send in two steps. `check()` applies the rules that need no database (the
    account may send, through these SIMs; the text; every number is a phone number, which also
    leaves its E.164 form in the normalisation cache); `write()` does the whole send in one
    transaction (blacklist and opt-outs, the quota, the idempotency key, the messages, their
    owner, Kannel callbacks) and returns the queued messages. Calling it does both. A refusal
    is a PoolError from either step, and stores nothing. A group commit (group_commit.py) runs
    the checks before its transaction, so the write lock is held for less."""

    def __init__(self, sender: AccountSending, numbers: list[str], text: str,
                 when: dict[str, Any], sims: list[str] | None, client_id: str | None,
                 dlr: tuple[str, int] | None) -> None:
        self.sender, self.numbers, self.text, self.when = sender, numbers, text, when
        self.sims, self.client_id, self.dlr = sims, client_id, dlr
        self.parts: int | None = None   # known once checked
        self._callback_checked = dlr is None

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def locks(self) -> tuple[str, ...]:
        """The locks `write()` takes (the account's quota): a group commit takes those of
        all its sends first, in one order."""
        return quota_locks(self.sender.account)

    def __call__(self) -> list[Queued]:
        self.check()
        return self.write()

    def check_callback(self) -> None:
        """The Kannel callback may be called (http(s), its host's addresses public or in
        `[http] callback_allow`: modempool/callback_guard.py), else a `CallbackRefused`.
        It resolves the host: a front end calls it off the event loop, before `check()`
        (which then does not resolve again). An account that may not send (or not through
        the asked SIMs) is refused first: a viewer learns nothing of where names point."""
        from modempool.callback_guard import check_callback

        if not self._callback_checked:
            sims_for_send(self.sender.account, self.sims)
            check_callback(self.dlr[0], self.sender.config.http.callback_allow)
            self._callback_checked = True

    def check(self) -> int:
        """The parts the text needs; a PoolError if the send is refused outright."""
        from modempool.spool.numbers import normalise_all
        from modempool.spool.sendable import check_text
        from modempool.when import check_window

        sender = self.sender
        sims_for_send(sender.account, self.sims)
        refuse_nul("client_id", self.client_id)   # before it is looked up (PostgreSQL)
        self.check_callback()
        parts = check_text(self.text, sender.spool.messages.max_parts)
        check_window(self.when["at"], self.when["expires"])
        if not self.numbers:
            raise PoolError("no recipient given", code="no_recipient")
        normalise_all(self.numbers, sender.config.region)
        self.parts = parts
        return parts

    def write(self) -> list[Queued]:
        sender, spool, account = self.sender, self.sender.spool, self.sender.account
        parts = self.parts if self.parts is not None else self.check()
        allowed_sims = sims_for_send(account, self.sims)
        key = namespaced_client_id(account, self.client_id)
        first_key = fan_out(key, 0, len(self.numbers) > 1)   # the first message's key
        now = utcnow()
        with spool.transaction() as conn:  # quota, enqueue and ownership: one commit
            again = first_key is not None and spool.get_by_client_id(first_key) is not None
            if not again:  # a retry with the same key sends nothing new, so costs nothing
                check_quota(spool.engine, conn, account, len(self.numbers), now,
                            quota_day_start(now, sender.config.tz))
            ids = sender.pool.queue(self.numbers, self.text, client_id=key,
                                    sims=allowed_sims or (), **self.when)
            if not again:
                record_owner(spool, account, ids, now)
                if self.dlr is not None:
                    from modempool.webhooks import Webhooks

                    Webhooks(spool).add_dlr(conn, ids, self.dlr[0], self.dlr[1])
            found = spool.messages.recipients_and_states(ids)
        return [Queued(i, found[i][0], found[i][1], parts) for i in ids]
