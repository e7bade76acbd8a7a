"""The pool's people part: the address book (contacts, groups, imports and exports, group
expressions like "家长+教师-毕业班"), opt-outs (退订) and the blacklist, as a person manages
them, with what people type read here (birthdays such as "5月17日", numbers). `Pool` holds it as
`pool.people_desk` and keeps each call under its front-door name (`pool.save_contact(...)` is
`pool.people_desk.save_contact(...)`); the rules are the operator modules' (`AddressBook`,
`OptOutList`), bound to the pool's spool and config."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modempool.operator.contacts import Contact, Group
    from modempool.operator.importers import ImportReport
    from modempool.operator.optout import BlacklistEntry, OptOut
    from modempool.pool import Pool

__all__ = ["PoolPeople"]


class PoolPeople:
    """Contacts and groups, opt-outs and the blacklist, as a person asks for them."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def save_contact(self, number: str, name: str = "", *, fields: dict[str, Any] | None = None,
                     birthday: str | None = None, notes: str = "",
                     groups: Iterable[str] = ()) -> Contact:
        """Add or update one contact; `birthday` as typed (`1990-05-17`, `05-17`, `5月17日`)."""
        return self.pool.contacts.upsert(number, name, fields=fields, birthday=birthday,
                                         notes=notes, groups=tuple(groups))

    def remove_contact(self, number: str) -> None:
        """Delete a contact (NotFound if `number` is not in the address book)."""
        self.pool.contacts.remove(number)

    def groups(self) -> list[Group]:
        """Every group with its member count, by name."""
        return self.pool.contacts.group_list()

    def create_group(self, name: str, description: str = "") -> int:
        """Create a group (an existing one stays as it is); returns its id."""
        return self.pool.contacts.create_group(name, description)

    def rename_group(self, name: str, new_name: str) -> None:
        """Give a group another name; its members stay."""
        self.pool.contacts.rename_group(name, new_name)

    def delete_group(self, name: str) -> None:
        """Delete a group; its contacts stay in the address book."""
        self.pool.contacts.delete_group(name)

    def add_to_group(self, group: str, numbers: Iterable[str]) -> int:
        """Put contacts (by number) in a group, creating it; all or none: a number that is
        no contact adds nobody and leaves no new group. Returns how many."""
        return self.pool.contacts.add_to_group(group, numbers)

    def remove_from_group(self, group: str, numbers: Iterable[str]) -> int:
        """Take contacts out of a group; returns how many were in it."""
        return self.pool.contacts.remove_from_group(group, numbers)

    def import_contacts(self, path: str | Path, *, mapping: dict[str, str] | None = None,
                        groups: Iterable[str] = (), encoding: str | None = None,
                        sheet: str | None = None, skip_rejected: bool = False,
                        dry_run: bool = False) -> ImportReport:
        """Import a CSV, XLSX or TXT file into the address book, all or nothing (ImportRejected
        lists every bad row) unless `skip_rejected`; `dry_run` checks and stores nothing."""
        from modempool.operator.importers import import_contacts

        return import_contacts(self.pool.contacts, path, mapping=mapping, groups=groups,
                               encoding=encoding, sheet=sheet, skip_rejected=skip_rejected,
                               dry_run=dry_run)

    def export_contacts(self, path: str | Path, *, group: str | None = None,
                        encoding: str = "utf-8-sig") -> int:
        """Write contacts (all, or one group's) to CSV or XLSX; returns how many."""
        from modempool.operator.importers import export_contacts

        return export_contacts(self.pool.contacts, path, group=group, encoding=encoding)

    def select_contacts(self, groups: str | Iterable[str]) -> list[Contact]:
        """The contacts of group expressions such as "家长+教师-毕业班", each once."""
        from modempool.operator.contacts import parse_selections

        return self.pool.contacts.select(parse_selections(groups))

    def add_optouts(self, numbers: Iterable[str], *, source: str = "manual") -> int:
        """Opt numbers out (退订), all or none: one that is no phone number is an InvalidNumber
        naming it, and opts none out. Returns how many were not opted out before."""
        return self.pool.optouts.add_many(numbers, source=source)

    def optout_list(self) -> list[OptOut]:
        """Every opted-out number, oldest first."""
        return self.pool.optouts.opted_out()

    def remove_optout(self, number: str) -> None:
        """Opt a number back in (with the person's consent); NotFound if it is not opted out."""
        self.pool.optouts.remove(number)

    def blacklist(self) -> list[BlacklistEntry]:
        """Every blacklisted number with why, by number."""
        return self.pool.optouts.blacklisted()

    def add_to_blacklist(self, numbers: Iterable[str], reason: str = "") -> int:
        """Blacklist numbers, all or none (one that is no phone number blacklists none);
        returns how many were not on it before."""
        return self.pool.optouts.add_to_blacklist(list(numbers), reason)

    def remove_from_blacklist(self, number: str) -> None:
        """Take a number off the blacklist; NotFound if it is not on it."""
        self.pool.optouts.remove_from_blacklist(number)

    def import_blacklist(self, path: str | Path, *, reason: str = "imported",
                         skip_rejected: bool = False) -> ImportReport:
        """Blacklist every number of a CSV, XLSX or TXT file, all or nothing (ImportRejected
        lists every bad row) unless `skip_rejected`."""
        return self.pool.optouts.import_blacklist(path, reason=reason, skip_rejected=skip_rejected)

    def export_optouts(self, path: str | Path, *, blacklist: bool = False) -> int:
        """Write the opt-outs (or the blacklist) to CSV or XLSX; returns the rows written."""
        return self.pool.optouts.export(path, "blacklist" if blacklist else "optouts")
