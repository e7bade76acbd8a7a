"""What one API account may do with the pool: `AccountPool(spool, config, account)`.

Every rule of the API lives here, not in the HTTP layer: the account's role, its SIMs and
quotas, that it sees and cancels only its own messages (another account's message is "not
found", never "forbidden": its existence is not revealed), that its idempotency keys are its
own. The HTTP routes and the Kannel interface translate requests into these calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from modempool.accounts import (Account, Forbidden, check_quota, namespaced_client_id, record_owner,
                                sims_for_send)
from modempool.errors import InvalidNumber, NotFound, PoolError
from modempool.spool.model import Message, MessageState, to_text, utcnow


class Refused(PoolError):
    """A send refused for one number (blacklist, opt-out); nothing was queued."""


@dataclass(frozen=True, slots=True)
class Queued:
    """One message as a send answers it."""

    id: int
    to: str
    state: str
    parts: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.to, "state": self.state, "parts": self.parts}


class AccountPool:
    """The pool as one account sees it (the tables exist once `Accounts(spool)` was made)."""

    def __init__(self, spool: Any, config: Any, account: Account) -> None:
        self.spool = spool
        self.config = config
        self.account = account

    # ---- sending --------------------------------------------------------------------------

    def send(self, to: Iterable[str], text: str, *, not_before: datetime | None = None,
             expires_at: datetime | None = None, priority: int = 0,
             sims: Sequence[str] | None = None, client_id: str | None = None,
             dlr: tuple[str, int] | None = None) -> list[Queued]:
        """Queue `text` to every number of `to`, all or nothing; the same `client_id` again
        returns the messages of the first call. `dlr` = (url, mask): Kannel callbacks."""
        from pdu import PduError, parts_needed

        allowed_sims = sims_for_send(self.account, list(sims) if sims else None)
        if allowed_sims:
            self.config.check_sims(allowed_sims)
        if not isinstance(text, str) or text == "":
            raise PoolError("message text is empty")
        try:
            parts = parts_needed(text).parts
        except PduError as exc:
            raise PoolError(f"text cannot be sent as SMS: {exc}") from None
        numbers = to if isinstance(to, list) else list(to)
        if not numbers:
            raise PoolError("no recipient given")
        key = namespaced_client_id(self.account, client_id)
        single = len(numbers) == 1
        now = utcnow()
        with self.spool.transaction() as conn:
            first_key = key if single or key is None else f"{key}:1"
            again = first_key is not None and conn.execute(
                "SELECT 1 FROM messages WHERE client_id = ?", (first_key,)).fetchone()
            if not again:
                self._check_allowed(conn, numbers)
                check_quota(conn, self.account, len(numbers), now, self._day_start(now))
            rows = (dict(to=number, text=text, priority=priority, not_before=not_before,
                         expires_at=expires_at, sims=allowed_sims,
                         client_id=None if key is None else key if single else f"{key}:{i + 1}")
                    for i, number in enumerate(numbers))
            ids = self.spool.enqueue_many(rows)
            if not again:
                record_owner(conn, self.account, ids, now)
                if dlr is not None:
                    from modempool.webhooks import Webhooks

                    Webhooks(self.spool).add_dlr(conn, ids, dlr[0], dlr[1])
            found = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT id, to_number, state FROM messages WHERE id IN "
                "(SELECT value FROM json_each(?))", (json.dumps(ids),))}
        return [Queued(i, found[i][0], found[i][1], parts) for i in ids]

    def _check_allowed(self, conn: Any, numbers: list[str]) -> None:
        """Blacklisted numbers never get anything; opted-out ones not when [optout]
        block_direct is set. One refused number refuses the whole send."""
        from modempool.numbers import normalise
        from modempool.operator.optout import OptOutSettings

        e164 = []
        for index, number in enumerate(numbers):
            try:
                e164.append(normalise(str(number), self.config.region))
            except InvalidNumber as exc:
                raise InvalidNumber(f"row {index + 1}: {exc}") from None
        checks = [("blacklist", "number is on the blacklist")]
        if OptOutSettings.from_config(self.config).block_direct:
            checks.append(("optouts", "number has opted out and [optout] block_direct is set"))
        wanted = json.dumps(e164)
        for table, why in checks:
            hit = conn.execute(f"SELECT number FROM {table} WHERE number IN "
                               "(SELECT value FROM json_each(?)) LIMIT 1", (wanted,)).fetchone()
            if hit:
                raise Refused(f"{hit[0]}: {why}; nothing was queued")

    def _day_start(self, now: datetime) -> datetime:
        local = now.astimezone(self.config.tz)
        return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)

    # ---- reading and deciding -------------------------------------------------------------

    def get(self, message_id: int) -> Message:
        """The message if this account may see it, else NotFound."""
        if not self._owns(message_id):
            raise NotFound(f"no message with id {message_id}")
        return self.spool.get(message_id)

    def parts(self, message_id: int) -> list[dict[str, Any]]:
        self.get(message_id)
        return self.spool.parts(message_id)

    def list(self, *, state: str | None = None, to: str | None = None, after: int | None = None,
             limit: int = 100) -> tuple[list[Message], int | None]:
        """The account's messages in id order after the cursor `after`; returns them and the
        next cursor (None at the end)."""
        where, params = ["1 = 1"], []
        if state is not None:
            where.append("m.state = ?")
            params.append(MessageState(state).value)
        if to is not None:
            from modempool.numbers import normalise

            where.append("m.to_number = ?")
            params.append(normalise(to, self.config.region))
        if after is not None:
            where.append("m.id > ?")
            params.append(int(after))
        if not self.account.sees_all:
            where.append("m.id IN (SELECT message_id FROM message_accounts WHERE account = ?)")
            params.append(self.account.name)
        rows = self.spool.rows(f"SELECT m.* FROM messages m WHERE {' AND '.join(where)} "
                               "ORDER BY m.id LIMIT ?", [*params, limit + 1])
        messages = [Message.from_row(r) for r in rows[:limit]]
        return messages, (messages[-1].id if len(rows) > limit else None)

    def cancel(self, message_id: int) -> Message:
        self._may_decide(message_id)
        return self.spool.cancel(message_id)

    def retry(self, message_id: int) -> Message:
        self._may_decide(message_id)
        return self.spool.retry(message_id)

    def _may_decide(self, message_id: int) -> None:
        self.get(message_id)
        if not self.account.may_send:
            raise Forbidden(f"account {self.account.name!r} is a viewer: it may not change messages")

    def _owns(self, message_id: int) -> bool:
        if self.account.sees_all:
            return bool(self.spool.rows("SELECT 1 FROM messages WHERE id = ?", (message_id,)))
        return bool(self.spool.rows(
            "SELECT 1 FROM message_accounts WHERE message_id = ? AND account = ?",
            (message_id, self.account.name)))

    def client_id(self, message: Message) -> str | None:
        """The idempotency key as the account gave it (stored in its namespace)."""
        prefix = f"{self.account.name}:"
        if message.client_id and message.client_id.startswith(prefix):
            return message.client_id[len(prefix):]
        return message.client_id if self.account.sees_all else None

    # ---- inbound and SIMs -----------------------------------------------------------------

    def inbound(self, *, since: datetime | None = None, after: int | None = None,
                limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
        """Received SMS after the cursor, with the sender's contact name; an account bound
        to some SIMs sees what arrived on them."""
        from modempool.operator.contacts import AddressBook

        where, params = ["1 = 1"], []
        if since is not None:
            where.append("received_at >= ?")
            params.append(to_text(since))
        if after is not None:
            where.append("id > ?")
            params.append(int(after))
        if not self.account.sees_all and self.account.sims is not None:
            where.append("sim IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(self.account.sims)))
        rows = self.spool.rows(f"SELECT * FROM inbound WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                               [*params, limit + 1])
        book, names = AddressBook(self.spool.db, self.config.region), {}
        out = []
        for row in rows[:limit]:
            if row["sender"] not in names:
                contact = book.find(row["sender"])
                names[row["sender"]] = (contact.name if contact else None,
                                        list(contact.groups) if contact else [])
            out.append({"id": row["id"], "from": row["sender"], "name": names[row["sender"]][0],
                        "groups": names[row["sender"]][1], "sim": row["sim"], "text": row["text"],
                        "received_at": row["received_at"], "parts": row["parts"],
                        "complete": bool(row["complete"])})
        return out, (out[-1]["id"] if len(rows) > limit else None)

    def ussd_allowed(self, sim: str) -> None:
        """Forbidden/SimNotAllowed/NotFound unless this account may run USSD on `sim`."""
        sims_for_send(self.account, [sim])
        if self.config.modems and self.config.modem(sim) is None:
            raise NotFound(f"no SIM named {sim!r}")

    def sims(self) -> list[dict[str, Any]]:
        """Each SIM the account may use: state, signal, operator, own number, counters against
        its quotas, last error."""
        known = {row["name"]: row for row in self.spool.sims()}
        names = [m.name for m in self.config.modems] + sorted(set(known) - {m.name for m in self.config.modems})
        if not self.account.sees_all and self.account.sims is not None:
            names = [n for n in names if n in self.account.sims]
        out = []
        for name in names:
            row = known.get(name) or {}
            modem = self.config.modem(name)
            minute, today, month = self.spool.sent_counts(name)
            out.append({
                "name": name, "state": row.get("state") or "unknown", "signal": row.get("signal"),
                "operator": row.get("operator"), "number": row.get("msisdn"),
                "sent": {"minute": minute, "today": today, "month": month,
                         "total": row.get("sent_total", 0)},
                "quota": {"per_minute": modem.per_minute if modem else None,
                          "per_day": modem.per_day if modem else None,
                          "per_month": modem.per_month if modem else None},
                "errors": row.get("errors", 0), "last_error": row.get("last_error"),
                "updated_at": row.get("updated_at"),
            })
        return out
