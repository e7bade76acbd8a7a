"""What one API account may do with the pool: `pool.for_account(account)` (an `AccountPool`).

It wraps the front door (`modempool.Pool`, which keeps the rules for everyone: numbers,
SIM names, blacklist, opt-outs) and adds the account's own: its role, its SIMs and quotas,
that it sees and cancels only its own messages (another account's message is "not found",
never "forbidden": its existence is not revealed), that its idempotency keys are its own.
The operator features as the account may use them are methods here too (the HTTP routes,
the Kannel interface and the web console call this one object): everyone signed in reads the
address book and the conversations they may see; admins and senders change contacts and groups
and reply; a viewer changes nothing (`Forbidden`); campaigns, opt-outs, the blacklist, history,
auto-replies, accounts and webhooks are the bank's, so admins only. An account bound to some
SIMs sees the replies that arrived on them; its own outgoing messages join its threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.accounts import (Account, Forbidden, check_quota, namespaced_client_id, record_owner,
                                sims_for_send)
from modempool.errors import NotFound, PoolError
from modempool.spool.inbound import InboundMessage
from modempool.spool.model import Message, MessageState, to_text, utcnow

if TYPE_CHECKING:
    from modempool.operator.campaigns import Campaigns
    from modempool.operator.forwarding import ForwardTargets
    from modempool.operator.templates import CampaignTemplates
    from modempool.operator.contacts import Contact
    from modempool.operator.optout import OptOutList
    from modempool.pool import Received

@dataclass(frozen=True, slots=True)
class Queued:
    """One message as a send answers it."""

    id: int
    to: str
    state: str
    parts: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.to, "state": self.state, "parts": self.parts}


class PlannedSend:
    """One account's send in two steps. `check()` applies the rules that need no database (the
    account may send, through these SIMs; the text; every number is a phone number, which also
    leaves its E.164 form in the normalisation cache); `write()` does the whole send in one
    transaction (blacklist and opt-outs, the quota, the idempotency key, the messages, their
    owner, Kannel callbacks) and returns the queued messages. Calling it does both. A refusal
    is a PoolError from either step, and stores nothing. A group commit (group_commit.py) runs
    the checks before its transaction, so the write lock is held for less."""

    def __init__(self, pool: AccountPool, numbers: list[str], text: str, when: dict[str, Any],
                 sims: list[str] | None, client_id: str | None,
                 dlr: tuple[str, int] | None) -> None:
        self.pool, self.numbers, self.text, self.when = pool, numbers, text, when
        self.sims, self.client_id, self.dlr = sims, client_id, dlr
        self.parts: int | None = None   # known once checked

    def __len__(self) -> int:
        return len(self.numbers)

    def __call__(self) -> list[Queued]:
        self.check()
        return self.write()

    def check(self) -> int:
        """The parts the text needs; a PoolError if the send is refused outright."""
        from modempool.spool.numbers import normalise_all
        from modempool.spool.sendable import check_text

        owner = self.pool
        sims_for_send(owner.account, self.sims)
        parts = check_text(self.text, owner.spool.messages.max_parts)
        if not self.numbers:
            raise PoolError("no recipient given", code="no_recipient")
        normalise_all(self.numbers, owner.config.region)
        self.parts = parts
        return parts

    def write(self) -> list[Queued]:
        owner, spool = self.pool, self.pool.spool
        parts = self.parts if self.parts is not None else self.check()
        allowed_sims = sims_for_send(owner.account, self.sims)
        key = namespaced_client_id(owner.account, self.client_id)
        first_key = key if key is None or len(self.numbers) == 1 else f"{key}:1"
        now = utcnow()
        with spool.transaction() as conn:  # quota, enqueue and ownership: one commit
            again = first_key is not None and spool.get_by_client_id(first_key) is not None
            if not again:  # a retry with the same key sends nothing new, so costs nothing
                check_quota(conn, owner.account, len(self.numbers), now, owner._day_start(now))
            ids = owner.pool.queue(self.numbers, self.text, client_id=key,
                                   sims=allowed_sims or (), **self.when)
            if not again:
                record_owner(conn, owner.account, ids, now)
                if self.dlr is not None:
                    from modempool.webhooks import Webhooks

                    Webhooks(spool).add_dlr(conn, ids, self.dlr[0], self.dlr[1])
            among, values = spool.engine.among("id", ids)
            found = {row[0]: (row[1], row[2]) for row in conn.execute(
                f"SELECT id, to_number, state FROM messages WHERE {among}", values)}
        return [Queued(i, found[i][0], found[i][1], parts) for i in ids]


#: what a viewer may look at and not change, as the refusal names it
_SUBJECTS = {"messages": "messages", "contacts": "contacts", "groups": "groups",
             "optouts": "opt-outs and the blacklist"}


class AccountPool:
    """The pool as one account sees it (the tables exist once `Accounts(spool)` was made)."""

    def __init__(self, pool: Any, account: Account) -> None:
        self.pool = pool
        self.spool = pool.spool
        self.config = pool.config
        self.account = account

    # ---- sending --------------------------------------------------------------------------

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
        return self._listed(state, to, ("m.id > ?", after), "m.id", limit)

    def _listed(self, state: str | None, to: str | None, cursor: tuple[str, int | None],
                order: str, limit: int) -> tuple[list[Message], int | None]:
        """The account's messages of one state / to one number past a cursor, in `order`."""
        where, params = ["1 = 1"], []
        if state:
            where.append("m.state = ?")
            params.append(MessageState(state).value)
        if to:
            from modempool.numbers import normalise

            where.append("m.to_number = ?")
            params.append(normalise(to, self.config.region))
        if cursor[1] is not None:
            where.append(cursor[0])
            params.append(int(cursor[1]))
        if not self.account.sees_all:
            where.append("m.id IN (SELECT message_id FROM message_accounts WHERE account = ?)")
            params.append(self.account.name)
        rows = self.spool.rows(f"SELECT m.* FROM messages m WHERE {' AND '.join(where)} "
                               f"ORDER BY {order} LIMIT ?", [*params, limit + 1])
        messages = [Message.from_row(r) for r in rows[:limit]]
        return messages, (messages[-1].id if len(rows) > limit else None)

    def cancel(self, message_id: int) -> Message:
        self._may_decide(message_id)
        return self.pool.cancel(message_id)

    def retry(self, message_id: int) -> Message:
        self._may_decide(message_id)
        return self.pool.retry(message_id)

    def _may_decide(self, message_id: int) -> None:
        self.get(message_id)
        if not self.account.may_send:
            raise Forbidden(f"account {self.account.name!r} is a viewer: it may not change messages",
                            code="may_not_change", params={"account": self.account.name})

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
                limit: int = 100) -> tuple[list[Received], int | None]:
        """Received SMS after the cursor, with the sender's contact name, and the cursor of
        the next page (None: no more); an account bound to some SIMs sees what arrived on
        them."""
        where, params = ["1 = 1"], []
        if since is not None:
            where.append("received_at >= ?")
            params.append(to_text(since))
        if after is not None:
            where.append("id > ?")
            params.append(int(after))
        if not self.account.sees_all and self.account.sims is not None:
            among, values = self.spool.engine.among("sim", self.account.sims)
            where.append(among)
            params += values
        rows = self.spool.rows(f"SELECT * FROM inbound WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                               [*params, limit + 1])
        received = self.pool.with_contacts(InboundMessage.from_row(row) for row in rows[:limit])
        return received, (received[-1].message.id if len(rows) > limit else None)

    def ussd(self, sim: str, code: str, *, timeout: float = 60.0) -> Any:
        """Run a USSD code on one of the account's SIMs through the daemon (`Pool.ussd`);
        a viewer may not (a USSD code can spend the SIM's credit)."""
        sims_for_send(self.account, [sim])
        return self.pool.ussd(sim, code, timeout=timeout)

    def sims(self) -> list[dict[str, Any]]:
        """Each SIM the account may use: state (unknown while no daemon runs), signal,
        operator, own number, counters against its quotas, last error."""
        out = []
        for sim in self.pool.status().sims:
            if not self.account.sees_all and self.account.sims is not None \
                    and sim.name not in self.account.sims:
                continue
            out.append({
                "name": sim.name, "state": sim.state, "signal": sim.signal,
                "operator": sim.operator, "number": sim.details.get("msisdn"),
                "sent": {"minute": sim.sent_minute, "today": sim.sent_today,
                         "month": sim.sent_month, "total": sim.details.get("sent_total", 0)},
                "quota": {"per_minute": sim.per_minute, "per_day": sim.per_day,
                          "per_month": sim.per_month},
                "errors": sim.errors, "last_error": sim.last_error,
                "updated_at": sim.details.get("updated_at"),
            })
        return out

    # ---- what the web console shows (the same rules: own messages, own SIMs) ---------------

    def status(self) -> dict[str, Any]:
        """The dashboard: the account's SIMs as `Pool.status` sees them (state with quarantine
        reason and until when, signal, operator, number, counters against quotas), the queue by
        state of the messages it may see, throughput over the last hour and the campaigns
        running or paused that it may see (`campaign_desk`: a sender's own)."""
        whole = self.pool.status()
        sims = [s for s in whole.sims if self.account.sees_all or self.account.sims is None
                or s.name in self.account.sims]
        queue = whole.queue if self.account.sees_all else self.counts()
        seen = None if self.account.sees_all else {c.id for c in self.campaign_desk().list()}
        return {"daemon": whole.daemon, "sims": sims, "queue": queue,
                "throughput": self.throughput([s.name for s in sims]),
                "campaigns": [c for c in whole.campaigns if seen is None or c.campaign in seen]}

    def counts(self) -> dict[str, int]:
        """Messages in each state (every state, zeros included) among those the account sees."""
        if self.account.sees_all:
            return self.spool.counts()
        out = {state.value: 0 for state in MessageState}
        for row in self.spool.rows(
                "SELECT m.state, count(*) AS n FROM message_accounts a JOIN messages m "
                "ON m.id = a.message_id WHERE a.account = ? GROUP BY m.state", (self.account.name,)):
            out[row["state"]] = row["n"]
        return out

    def throughput(self, sims: Iterable[str], minutes: int = 60,
                   now: datetime | None = None) -> list[int]:
        """Parts sent through `sims` in each of the last `minutes` minutes, oldest first (by
        SIM, so the (sim, sent_at) index answers without reading old parts)."""
        from datetime import timedelta

        now = now or utcnow()
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
        buckets = [0] * minutes
        among, values = self.spool.engine.among("sim", sims)
        for row in self.spool.rows(
                "SELECT substr(sent_at, 1, 16) AS minute, count(*) AS n FROM parts "
                f"WHERE {among} AND sent_at >= ? GROUP BY minute", [*values, to_text(start)]):
            try:
                moment = datetime.fromisoformat(row["minute"] + ":00+00:00")
            except ValueError:
                continue
            index = int((moment - start).total_seconds() // 60)
            if 0 <= index < minutes:
                buckets[index] += row["n"]
        return buckets

    def page(self, *, state: str | None = None, to: str | None = None,
             before: int | None = None, limit: int = 50) -> tuple[list[Message], int | None]:
        """The account's messages newest first, before the cursor `before`; returns them and
        the next (older) cursor, None at the end."""
        return self._listed(state, to, ("m.id < ?", before), "m.id DESC", limit)

    def many(self, ids: Iterable[int]) -> list[Message]:
        """The messages of `ids` the account may see (others are left out, as not found)."""
        out = []
        for message_id in ids:
            try:
                out.append(self.get(int(message_id)))
            except (NotFound, ValueError):
                continue
        return out

    def recipients(self, text: str) -> list[str]:
        """The numbers a person typed: phone numbers, contact names and `@group`s, separated
        by commas, semicolons or new lines; each number once, in order. A name or group that
        is not in the address book is a NotFound naming it."""
        import re

        from modempool.numbers import normalise
        from modempool.operator.contacts import AddressBook, Selection

        book = AddressBook(self.spool.db, self.config.region)
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

    # ---- who may do what ------------------------------------------------------------------

    def require_sender(self, subject: str = "messages") -> None:
        """Forbidden unless the account may change things (admin or sender); the refusal
        names the `subject` (`messages`, `contacts`, `groups`, `optouts`) and its code is
        `may_not_change` or `may_not_change_<subject>`, for the console to word it."""
        if not self.account.may_send:
            code = "may_not_change" if subject == "messages" else f"may_not_change_{subject}"
            raise Forbidden(f"account {self.account.name!r} is a viewer: it may look at "
                            f"{_SUBJECTS[subject]}, not change them",
                            code=code, params={"account": self.account.name})

    def require_admin(self) -> None:
        """Forbidden unless the account is an admin (the bank's own features)."""
        if not self.account.sees_all:
            raise Forbidden(f"account {self.account.name!r} is not an admin", code="admin_only",
                            params={"account": self.account.name})

    def _inbound_scope(self) -> tuple[str, list[Any]]:
        if self.account.sees_all or self.account.sims is None:
            return "1 = 1", []
        return self.spool.engine.among("sim", self.account.sims)

    # ---- conversations --------------------------------------------------------------------

    def conversations(self, limit: int = 100) -> list[dict[str, Any]]:
        """Who wrote to the bank, newest first: number, contact name, last text, unread count."""
        scope, params = self._inbound_scope()
        # the last text is the newest this account may see: the same scope inside and out
        rows = self.spool.rows(
            f"SELECT sender, max(received_at) AS last_at, sum(1 - read) AS unread, count(*) AS n, "
            f"(SELECT text FROM inbound WHERE sender = i.sender AND {scope} ORDER BY id DESC "
            f"LIMIT 1) AS last_text FROM inbound i WHERE {scope} GROUP BY sender "
            f"ORDER BY last_at DESC LIMIT ?", [*params, *params, limit])
        book = self.pool.contacts
        out = []
        for row in rows:
            contact = book.find(row["sender"]) if row["sender"] else None
            out.append({"number": row["sender"], "name": contact.name if contact else "",
                        "last_at": row["last_at"], "unread": row["unread"] or 0,
                        "count": row["n"], "last_text": row["last_text"]})
        return out

    def thread(self, number: str, *, mark_read: bool = True) -> dict[str, Any]:
        """One conversation oldest first: what `number` sent (with the opt-out a message
        caused) and what this account sent it; the replies are marked read."""
        scope, params = self._inbound_scope()
        inbound = self.spool.rows(f"SELECT id, text, received_at, sim, read FROM inbound "
                                  f"WHERE sender = ? AND {scope} ORDER BY id DESC LIMIT 200",
                                  [number, *params])
        sent, _ = self.page(to=number, limit=200) if number.startswith("+") else ([], None)
        optouts = {r["inbound_id"]: r for r in self.pool.optouts.optouts() if r["number"] == number}
        items = [{"dir": "in", "id": r["id"], "text": r["text"], "at": r["received_at"],
                  "sim": r["sim"], "unread": not r["read"], "optout": optouts.get(r["id"])}
                 for r in inbound]
        items += [{"dir": "out", "id": m.id, "text": m.text, "at": to_text(m.created_at),
                   "sim": m.sim, "state": m.state.value} for m in sent]
        items.sort(key=lambda item: item["at"] or "")
        unread = [r["id"] for r in inbound if not r["read"]]
        if mark_read and unread:
            self.spool.mark_read(unread)
        contact = self.pool.contacts.find(number)
        return {"number": number, "name": contact.name if contact else "", "items": items,
                "contact": contact}

    # ---- the address book: everyone reads it, senders and admins change it ----------------

    def contacts(self, *, group: str | None = None, search: str | None = None) -> list[Contact]:
        """Contacts, of one group (NotFound if there is none by that name) and/or matching
        `search` in name, number or notes."""
        return self.pool.contacts.list(group=group, search=search)

    def contact(self, number: str) -> Contact | None:
        """The contact of `number`, None if it is not in the address book."""
        return self.pool.contacts.find(number)

    def groups(self) -> list[dict[str, Any]]:
        return self.pool.contacts.groups()

    def upsert_contact(self, number: str, name: str = "", *, fields: dict[str, Any] | None = None,
                       birthday: str | None = None, notes: str = "",
                       groups: Iterable[str] = ()) -> Contact:
        """Add or update a contact (senders and admins; a viewer gets Forbidden)."""
        self.require_sender("contacts")
        return self.pool.contacts.upsert(number, name, fields=fields, birthday=birthday,
                                         notes=notes, groups=list(groups))

    def remove_contact(self, number: str) -> None:
        """Remove a contact (senders and admins; a viewer gets Forbidden)."""
        self.require_sender("contacts")
        self.pool.contacts.remove(number)

    def create_group(self, name: str, description: str = "") -> int:
        self.require_sender("groups")
        return self.pool.contacts.create_group(name, description)

    def rename_group(self, name: str, new_name: str) -> None:
        self.require_sender("groups")
        self.pool.contacts.rename_group(name, new_name)

    def delete_group(self, name: str) -> None:
        self.require_sender("groups")
        self.pool.contacts.delete_group(name)

    def add_to_group(self, group: str, numbers: Iterable[str]) -> int:
        self.require_sender("groups")
        return self.pool.contacts.add_to_group(group, numbers)

    def remove_from_group(self, group: str, numbers: Iterable[str]) -> int:
        self.require_sender("groups")
        return self.pool.contacts.remove_from_group(group, numbers)

    def export_contacts(self, path: Path, *, group: str | None = None) -> int:
        """Write the address book (or one group) to CSV or XLSX by `path`'s suffix."""
        from modempool.operator.importers import export_contacts

        return export_contacts(self.pool.contacts, path, group=group)

    def preview_import(self, filename: str, data: bytes, directory: Path) -> tuple[Path, Any]:
        """Check an uploaded contacts file and keep it in `directory` for `confirm_import`;
        returns where it is and the report (accepted rows, rejected rows with reasons).
        Nothing is imported yet."""
        import secrets

        from modempool.operator.importers import check_rows, check_upload, read_table
        from modempool.private_files import write_private

        self.require_sender("contacts")
        suffix = check_upload(filename, data)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{secrets.token_hex(12)}{suffix}"
        write_private(path, data)   # people's names and numbers: owner only
        try:
            report = check_rows(read_table(path, name=filename), region=self.config.region,
                                path=filename)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        return path, report

    def confirm_import(self, path: Path, *, skip_rejected: bool,
                       groups: Iterable[str] = ()) -> Any:
        """Import a previewed file: all rows, or the good ones when `skip_rejected`;
        ImportRejected (nothing stored) if rows are bad and not skipped."""
        from modempool.operator.importers import import_contacts

        self.require_sender("contacts")
        try:
            return import_contacts(self.pool.contacts, path, skip_rejected=skip_rejected,
                                   groups=[g for g in groups if g])
        finally:
            path.unlink(missing_ok=True)

    # ---- the bank's own: campaigns, opt-outs, history, auto-replies, accounts (admins) ----

    def campaigns(self) -> Campaigns:
        self.require_admin()
        return self.pool.campaigns

    def templates(self) -> CampaignTemplates:
        """Saved campaign templates (the bank's, as its campaigns are)."""
        self.require_admin()
        return self.pool.templates

    def optouts(self) -> OptOutList:
        self.require_admin()
        return self.pool.optouts

    def add_optouts(self, numbers: Iterable[str], *, source: str = "api") -> int:
        """`Pool.add_optouts` (all or none), for senders and admins (it only stops sends)."""
        self.require_sender("optouts")
        return self.pool.add_optouts(numbers, source=source)

    def history(self, query: Any) -> list[dict[str, Any]]:
        """Sent and received messages matching `query` (history.Query), newest first: for an
        admin all of them, for anyone else its own messages and what came in on its SIMs."""
        return self.pool.history(self._scoped(query))

    def export_history(self, query: Any, path: Path) -> int:
        return self.pool.export_history(self._scoped(query), path)

    def _scoped(self, query: Any) -> Any:
        from dataclasses import replace

        if self.account.sees_all:
            return query
        return replace(query, owner=self.account.name, inbound_sims=self.account.sims)

    # ---- what every account may look at, and who changes it -------------------------------

    def permissions(self) -> dict[str, bool]:
        """What the account may do, for a front end to offer only that (the methods check
        again): send and change contacts (senders, admins); run campaigns (its own, or all for
        an admin); add opt-outs and blacklist entries; remove them, change auto-replies and
        forwarding, manage accounts (admins)."""
        sender, admin = self.account.may_send, self.account.sees_all
        return {"send": sender, "change_contacts": sender, "run_campaigns": sender,
                "add_optouts": sender, "remove_optouts": admin, "change_autoreplies": admin,
                "forwarding": admin, "templates": admin, "accounts": admin}

    def campaign_desk(self) -> Any:
        """The campaigns this account sees and runs (`AccountCampaigns`): all for an admin,
        its own for a sender, all to look at for a viewer."""
        from modempool.account_campaigns import AccountCampaigns

        return AccountCampaigns(self)

    def optout_list(self) -> list[dict[str, Any]]:
        """Opted-out numbers (everyone signed in may look), with the contact's name."""
        rows = self.pool.optouts.optouts()
        for row in rows:
            contact = self.pool.contacts.find(row["number"])
            row["name"] = contact.name if contact else ""
        return rows

    def blacklist(self) -> list[dict[str, Any]]:
        return self.pool.optouts.blacklist()

    def add_optout(self, number: str, *, source: str = "console") -> None:
        """Opt a number out (a request phoned in): senders and admins, as it only stops sends."""
        self.require_sender("optouts")
        self.pool.optouts.add(number, source=source)

    def add_to_blacklist(self, numbers: Iterable[str], reason: str = "") -> int:
        self.require_sender("optouts")
        return self.pool.optouts.add_to_blacklist(list(numbers), reason)

    def remove_optout(self, number: str) -> None:
        """Lift an opt-out (the person asked again): admins only."""
        self._require_lifting()
        self.pool.optouts.remove(number)

    def remove_from_blacklist(self, number: str) -> None:
        self._require_lifting()
        self.pool.optouts.remove_from_blacklist(number)

    def _require_lifting(self) -> None:
        """Forbidden unless an admin: others may add opt-outs and blacklist entries (that only
        stops sends), not lift them."""
        if not self.account.sees_all:
            raise Forbidden(f"account {self.account.name!r} may add opt-outs and blacklist "
                            "entries, not lift them (an admin does)", code="may_not_lift_optouts",
                            params={"account": self.account.name})

    def autoreply_rules(self) -> tuple[list[Any], list[Any]]:
        """The auto-reply rules, the config's (`config:N`) and the stored (`db:N`): everyone
        may look."""
        from modempool.operator.autoreply import rules_from_config

        return rules_from_config(self.config), self.pool.autoreplies.rules()

    def autoreplies(self) -> Any:
        self.require_admin()
        return self.pool.autoreplies

    def autoreply_rules_from_config(self) -> list[Any]:
        from modempool.operator.autoreply import rules_from_config

        self.require_admin()
        return rules_from_config(self.config)

    def forwarding(self) -> tuple[Any, ForwardTargets]:
        """`[forward]` of the config (format, command), and the numbers forwarded to (the
        config's, and those added and removed through `ForwardTargets`)."""
        self.require_admin()
        return self.config.forward, self.pool.forwarding

    def accounts(self) -> Any:
        from modempool.accounts import Accounts

        self.require_admin()
        return Accounts(self.spool)

    def sessions(self) -> Any:
        from modempool.sessions import Sessions

        self.require_admin()
        return Sessions(self.spool)

    def webhooks(self) -> Any:
        from modempool.webhooks import Webhooks

        self.require_admin()
        return Webhooks(self.spool)
