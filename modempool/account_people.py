"""The people one API account deals with (`account_pool.people`): its conversations (what
came in on its SIMs, and what it sent back) and the address book. Everyone signed in reads
them; admins and senders change contacts and groups and reply; a viewer gets `Forbidden`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.account_messages import AccountMessages
from modempool.account_rules import AccountRules
from modempool.spool.model import to_text
from modempool.spool.scoped import Conversation

if TYPE_CHECKING:
    from modempool.operator.contacts import Contact

__all__ = ["AccountPeople", "Conversation", "ConversationThread", "ThreadItem"]


@dataclass(frozen=True, slots=True)
class ThreadItem:
    """One message of a conversation: received (`dir` "in": unread or not, the opt-out it
    caused) or sent by the account (`dir` "out", with its state). `at` is the spool's UTC
    text (received; made, for a sent one)."""

    dir: str
    id: int
    text: str
    at: str | None
    sim: str | None
    unread: bool = False
    optout: dict[str, Any] | None = None
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"dir": self.dir, "id": self.id, "text": self.text, "at": self.at, "sim": self.sim}
        if self.dir == "in":
            out.update(unread=self.unread, optout=self.optout)
        else:
            out["state"] = self.state
        return out


@dataclass(frozen=True, slots=True)
class ConversationThread:
    """One number's conversation, oldest first, with the contact it is in the book as."""

    number: str
    name: str
    items: tuple[ThreadItem, ...]
    contact: Contact | None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name,
                "items": [item.to_dict() for item in self.items],
                "contact": self.contact.as_dict() if self.contact else None}


class AccountPeople:
    """Conversations and the address book as one account may use them."""

    def __init__(self, pool: Any, rules: AccountRules, messages: AccountMessages) -> None:
        self.pool = pool            # the front door, modempool.Pool
        self.spool = pool.spool
        self.config = pool.config
        self.rules = rules
        self.messages = messages

    # ---- conversations ----------------------------------------------------------------------

    def conversations(self, limit: int = 100) -> list[Conversation]:
        """Who wrote to the bank, newest first: number, contact name, last text, unread count
        (of what came in on the SIMs this account sees)."""
        book = self.pool.contacts
        out = []
        for row in self.spool.scoped.conversations(sims=self.rules.seen_sims, limit=limit):
            contact = book.find(row.number) if row.number else None
            out.append(replace(row, name=contact.name) if contact else row)
        return out

    def thread(self, number: str, *, mark_read: bool = True) -> ConversationThread:
        """One conversation oldest first: what `number` sent (with the opt-out a message
        caused) and what this account sent it; the replies are marked read."""
        inbound = self.spool.scoped.from_sender(number, sims=self.rules.seen_sims, limit=200)
        sent, _ = (self.messages.page(to=number, limit=200) if number.startswith("+")
                   else ([], None))
        optouts = {r["inbound_id"]: r for r in self.pool.optouts.optouts() if r["number"] == number}
        items = [ThreadItem("in", m.id, m.text, to_text(m.received_at), m.sim,
                            unread=not m.read, optout=optouts.get(m.id)) for m in inbound]
        items += [ThreadItem("out", m.id, m.text, to_text(m.created_at), m.sim,
                             state=m.state.value) for m in sent]
        items.sort(key=lambda item: item.at or "")
        unread = [m.id for m in inbound if not m.read]
        if mark_read and unread:
            self.spool.mark_read(unread)
        contact = self.pool.contacts.find(number)
        return ConversationThread(number, contact.name if contact else "", tuple(items), contact)

    # ---- the address book: everyone reads it, senders and admins change it ------------------

    def contacts(self, *, group: str | None = None, search: str | None = None) -> list[Contact]:
        """Contacts, of one group (NotFound if there is none by that name) and/or matching
        `search` in name, number or notes."""
        return self.pool.contacts.list(group=group, search=search)

    def contact(self, number: str) -> Contact | None:
        """The contact of `number`, None if it is not in the address book."""
        return self.pool.contacts.find(number)

    def groups(self) -> list[dict[str, Any]]:
        """Every group with its member count: `Pool.groups`, as the API answers it."""
        return [group.to_dict() for group in self.pool.groups()]

    def upsert_contact(self, number: str, name: str = "", *, fields: dict[str, Any] | None = None,
                       birthday: str | None = None, notes: str = "",
                       groups: Iterable[str] = ()) -> Contact:
        """Add or update a contact (senders and admins; a viewer gets Forbidden)."""
        self.rules.require_sender("contacts")
        return self.pool.contacts.upsert(number, name, fields=fields, birthday=birthday,
                                         notes=notes, groups=list(groups))

    def remove_contact(self, number: str) -> None:
        """Remove a contact (senders and admins; a viewer gets Forbidden)."""
        self.rules.require_sender("contacts")
        self.pool.contacts.remove(number)

    def create_group(self, name: str, description: str = "") -> int:
        self.rules.require_sender("groups")
        return self.pool.contacts.create_group(name, description)

    def rename_group(self, name: str, new_name: str) -> None:
        self.rules.require_sender("groups")
        self.pool.contacts.rename_group(name, new_name)

    def delete_group(self, name: str) -> None:
        self.rules.require_sender("groups")
        self.pool.contacts.delete_group(name)

    def add_to_group(self, group: str, numbers: Iterable[str]) -> int:
        self.rules.require_sender("groups")
        return self.pool.contacts.add_to_group(group, numbers)

    def remove_from_group(self, group: str, numbers: Iterable[str]) -> int:
        self.rules.require_sender("groups")
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

        self.rules.require_sender("contacts")
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

        self.rules.require_sender("contacts")
        try:
            return import_contacts(self.pool.contacts, path, skip_rejected=skip_rejected,
                                   groups=[g for g in groups if g])
        finally:
            path.unlink(missing_ok=True)
