"""The operator features as one account may use them: conversations, the address book,
campaigns, opt-outs and the blacklist, history. `AccountOperator(account_pool)`.

The rules (which the web console only renders): everyone signed in may read the address book
and the conversations they may see; admins and senders may change contacts and reply; a viewer
changes nothing; campaigns, opt-outs and the blacklist are the bank's, so admins only. An
account bound to some SIMs sees the replies that arrived on them; its own outgoing messages
join its threads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modempool.account_pool import AccountPool
from modempool.accounts import Forbidden


class AccountOperator:
    def __init__(self, pool: AccountPool) -> None:
        self.pool = pool
        self.account = pool.account
        self.spool = pool.spool
        self.config = pool.config

    # ---- who may do what -----------------------------------------------------------------

    def require_sender(self) -> None:
        if not self.account.may_send:
            raise Forbidden(f"account {self.account.name!r} is a viewer: it may look, not change")

    def require_admin(self) -> None:
        if not self.account.sees_all:
            raise Forbidden(f"account {self.account.name!r} is not an admin")

    def _inbound_scope(self) -> tuple[str, list[Any]]:
        if self.account.sees_all or self.account.sims is None:
            return "1 = 1", []
        return "sim IN (SELECT value FROM json_each(?))", [json.dumps(list(self.account.sims))]

    # ---- conversations -------------------------------------------------------------------

    def conversations(self, limit: int = 100) -> list[dict[str, Any]]:
        """Who wrote to the bank, newest first: number, contact name, last text, unread count."""
        from modempool.operator.contacts import AddressBook

        scope, params = self._inbound_scope()
        rows = self.spool.rows(
            f"SELECT sender, max(received_at) AS last_at, sum(1 - read) AS unread, count(*) AS n, "
            f"(SELECT text FROM inbound j WHERE j.sender = i.sender ORDER BY j.id DESC LIMIT 1) "
            f"AS last_text FROM inbound i WHERE {scope} GROUP BY sender ORDER BY last_at DESC "
            f"LIMIT ?", [*params, limit])
        book = AddressBook(self.spool.db, self.config.region)
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
        from modempool.operator.contacts import AddressBook
        from modempool.operator.optout import OptOutList

        scope, params = self._inbound_scope()
        inbound = self.spool.rows(f"SELECT id, text, received_at, sim, read FROM inbound "
                                  f"WHERE sender = ? AND {scope} ORDER BY id DESC LIMIT 200",
                                  [number, *params])
        sent, _ = self.pool.page(to=number, limit=200) if number.startswith("+") else ([], None)
        optouts = {r["inbound_id"]: r for r in OptOutList(self.spool.db, self.config.region).optouts()
                   if r["number"] == number}
        items = [{"dir": "in", "id": r["id"], "text": r["text"], "at": r["received_at"],
                  "sim": r["sim"], "unread": not r["read"], "optout": optouts.get(r["id"])}
                 for r in inbound]
        items += [{"dir": "out", "id": m.id, "text": m.text, "at": _text(m.created_at),
                   "sim": m.sim, "state": m.state.value} for m in sent]
        items.sort(key=lambda item: item["at"] or "")
        unread = [r["id"] for r in inbound if not r["read"]]
        if mark_read and unread:
            self.spool.mark_read(unread)
        contact = AddressBook(self.spool.db, self.config.region).find(number)
        return {"number": number, "name": contact.name if contact else "", "items": items,
                "contact": contact}

    # ---- address book --------------------------------------------------------------------

    def book(self) -> Any:
        from modempool.operator.contacts import AddressBook

        return AddressBook(self.spool.db, self.config.region)

    def preview_import(self, filename: str, data: bytes, directory: Path) -> tuple[Path, Any]:
        """Check an uploaded contacts file and keep it in `directory` for `confirm_import`;
        returns where it is and the report (accepted rows, rejected rows with reasons).
        Nothing is imported yet."""
        import secrets

        from modempool.operator.importers import check_rows, check_upload, read_table
        from modempool.private_files import write_private

        self.require_sender()
        suffix = check_upload(filename, data)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{secrets.token_hex(12)}{suffix}"
        write_private(path, data)   # people's names and numbers: owner only
        try:
            report = check_rows(read_table(path), region=self.config.region, path=filename)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        return path, report

    def confirm_import(self, path: Path, *, skip_rejected: bool,
                       groups: Iterable[str] = ()) -> Any:
        """Import a previewed file: all rows, or the good ones when `skip_rejected`;
        ImportRejected (nothing stored) if rows are bad and not skipped."""
        from modempool.operator.importers import import_contacts

        self.require_sender()
        try:
            return import_contacts(self.book(), path, skip_rejected=skip_rejected,
                                   groups=[g for g in groups if g])
        finally:
            path.unlink(missing_ok=True)

    # ---- campaigns, opt-outs (the bank's: admins) ----------------------------------------

    def campaigns(self) -> Any:
        from modempool.operator.campaigns import Campaigns

        self.require_admin()
        return Campaigns(self.spool, self.config)

    def optouts(self) -> Any:
        from modempool.operator.optout import OptOutList

        self.require_admin()
        return OptOutList(self.spool.db, self.config.region)

    # ---- history, auto-replies, forwarding, accounts and webhooks (admins) ---------------

    def history(self, query: Any) -> list[dict[str, Any]]:
        """Sent and received messages matching `query` (history.Query), newest first, text
        looked up in the spool's full-text index."""
        from modempool.operator.history import search

        self.require_admin()
        return search(self.spool, query, self.config.region)

    def export_history(self, query: Any, path: Path) -> int:
        from modempool.operator.history import export

        self.require_admin()
        return export(self.spool, query, path, self.config.region)

    def autoreplies(self) -> Any:
        from modempool.operator.autoreply import AutoReplies

        self.require_admin()
        return AutoReplies(self.spool.db)

    def autoreply_rules_from_config(self) -> list[Any]:
        from modempool.operator.autoreply import rules_from_config

        self.require_admin()
        return rules_from_config(self.config)

    def forwarding(self) -> Any:
        self.require_admin()
        return self.config.forward

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


def _text(moment: Any) -> str | None:
    from modempool.spool.model import to_text

    return to_text(moment)
