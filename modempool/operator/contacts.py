"""Address book: contacts, groups, and group arithmetic (A + B − C) for sending.

Tables live in the spool database so one file holds everything an operator has:
`contacts`(id, name, number UNIQUE, fields JSON, birthday MM-DD or YYYY-MM-DD, notes, created_at,
updated_at), `groups`(id, name UNIQUE, description, created_at), `group_members`(group_id, contact_id).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from modempool.errors import NotFound, PoolError, SpoolFailure
from modempool.numbers import DEFAULT_REGION, normalise
from modempool.spool.plain_text import refuse_nul
from modempool.operator.db import LIKE_ESCAPE, contains, ensure_schema, now_iso, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    number TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL DEFAULT '{}',
    birthday TEXT,
    notes TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX IF NOT EXISTS group_members_contact ON group_members(contact_id);
"""


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    name: str
    number: str
    fields: dict[str, Any] = field(default_factory=dict)
    birthday: str | None = None
    notes: str = ""
    groups: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "number": self.number, "fields": self.fields,
            "birthday": self.birthday, "notes": self.notes, "groups": list(self.groups),
        }

    to_dict = as_dict   # the name every result of `Pool` answers to

    def template_values(self) -> dict[str, Any]:
        """Values a campaign template can use: extra fields, then name/number/birthday."""
        values = {k: v for k, v in self.fields.items() if v not in (None, "")}
        values.update(name=self.name, number=self.number)
        if self.birthday:
            values["birthday"] = self.birthday
        return {k: v for k, v in values.items() if v not in (None, "")}


@dataclass(frozen=True, slots=True)
class Group:
    """A contact group (分组) with how many contacts are in it."""

    name: str
    description: str
    members: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "members": self.members}


@dataclass(frozen=True, slots=True)
class Selection:
    """Recipients chosen by groups: members of any `include` group minus members of any `exclude`."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def parse_birthday(text: str) -> str | None:
    """`1990-05-17`, `1990/5/17`, `5月17日`, `05-17` → `1990-05-17` or `05-17` (None for
    blank); ValueError if it is no date."""
    text = text.strip()
    if not text:
        return None
    match = re.fullmatch(r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?", text)
    if not match:
        raise ValueError(f"birthday {text!r} is not a date like 1990-05-17 or 05-17")
    year, month, day = match.groups()
    try:
        date(int(year or 2000), int(month), int(day))
    except ValueError:
        raise ValueError(f"birthday {text!r} is not a date like 1990-05-17 or 05-17") from None
    return f"{year}-{int(month):02d}-{int(day):02d}" if year else f"{int(month):02d}-{int(day):02d}"


def stored_birthday(text: str | None) -> str | None:
    """The birthday as the address book keeps it (`1990-05-17` or `05-17`), whoever typed it;
    PoolError naming it if it is no date, so nothing unreadable is stored."""
    if text is None:
        return None
    try:
        return parse_birthday(text)
    except ValueError as exc:
        raise PoolError(str(exc), code="birthday_invalid", params={"birthday": text}) from None


class AddressBook:
    """Contacts and groups stored in the spool's database (`spool.db`)."""

    def __init__(self, db: Any, region: str = DEFAULT_REGION) -> None:
        self.db = db
        self.region = region
        ensure_schema(db, SCHEMA)

    # ---- contacts
    def upsert(self, number: str, name: str = "", *, fields: dict[str, Any] | None = None,
               birthday: str | None = None, notes: str = "",
               groups: Iterable[str] = ()) -> Contact:
        """Add a contact or update the one with the same number (E.164); join `groups`."""
        e164 = normalise(number, self.region)
        with transaction(self.db):
            contact_id = self._upsert_row(e164, name, fields or {}, birthday, notes)
            for group in groups:
                self._join(self._group_id(group, create=True), contact_id)
        return self.get(e164)

    def upsert_many(self, rows: Iterable[dict[str, Any]], *, normalised: bool = False) -> int:
        """Add or update many contacts in one transaction (keys as `upsert`); `normalised` says the
        numbers are already E.164 from `normalise` (an importer checked them). Returns how many."""
        group_ids: dict[str, int] = {}
        count = 0
        with transaction(self.db):
            for row in rows:
                e164 = row["number"] if normalised else normalise(row["number"], self.region)
                contact_id = self._upsert_row(e164, row.get("name", ""), row.get("fields") or {},
                                              row.get("birthday"), row.get("notes", ""))
                for group in row.get("groups", ()):
                    if group not in group_ids:
                        group_ids[group] = self._group_id(group, create=True)
                    self._join(group_ids[group], contact_id)
                count += 1
        return count

    def _upsert_row(self, e164: str, name: str, fields: dict[str, Any],
                    birthday: str | None, notes: str) -> int:
        for what, value in (("name", name), ("fields", fields), ("birthday", birthday),
                            ("notes", notes)):
            refuse_nul(f"the contact's {what}", value)
        birthday = stored_birthday(birthday)   # every way in (CLI, API, console, import)
        now = now_iso()
        row = self.db.execute("SELECT id, fields FROM contacts WHERE number = ?", [e164]).fetchone()
        if row is None:
            cur = self.db.execute(
                "INSERT INTO contacts (name, number, fields, birthday, notes, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [name, e164, json.dumps(fields, ensure_ascii=False), birthday, notes, now, now])
            return int(cur.lastrowid)
        merged = {**json.loads(row[1]), **fields}
        self.db.execute(
            "UPDATE contacts SET name = CASE WHEN ? = '' THEN name ELSE ? END, fields = ?,"
            " birthday = COALESCE(?, birthday), notes = CASE WHEN ? = '' THEN notes ELSE ? END,"
            " updated_at = ? WHERE id = ?",
            [name, name, json.dumps(merged, ensure_ascii=False), birthday, notes, notes, now, row[0]])
        return int(row[0])

    def get(self, number: str) -> Contact:
        e164 = normalise(number, self.region)
        contacts = self._select("WHERE c.number = ?", [e164])
        if not contacts:
            raise NotFound(f"no contact with number {e164}", code="contact_not_found",
                           params={"number": e164})
        return contacts[0]

    def find(self, number: str) -> Contact | None:
        """The contact for a number, or None (used to label inbound senders: a number that is
        not one is none); a database failure is raised, not read as "no such contact"."""
        try:
            return self.get(number)
        except SpoolFailure:
            raise
        except PoolError:
            return None

    def remove(self, number: str) -> None:
        contact = self.get(number)
        with transaction(self.db):
            self.db.execute("DELETE FROM group_members WHERE contact_id = ?", [contact.id])
            self.db.execute("DELETE FROM contacts WHERE id = ?", [contact.id])

    def list(self, group: str | None = None, search: str | None = None) -> list[Contact]:
        """All contacts, or those of one group; `search` matches name, number or notes."""
        refuse_nul("the contact search", search)
        where, params = [], []
        if group is not None:
            where.append("c.id IN (SELECT contact_id FROM group_members WHERE group_id = ?)")
            params.append(self._group_id(group))
        if search:
            where.append(f"(c.name LIKE ? {LIKE_ESCAPE} OR c.number LIKE ? {LIKE_ESCAPE} "
                         f"OR c.notes LIKE ? {LIKE_ESCAPE})")
            params += [contains(search)] * 3
        return self._select(("WHERE " + " AND ".join(where)) if where else "", params)

    def _select(self, where: str, params: list[Any]) -> list[Contact]:
        sql = (
            "SELECT c.id, c.name, c.number, c.fields, c.birthday, c.notes,"
            " (SELECT json_group_array(g.name) FROM group_members m JOIN groups g ON g.id = m.group_id"
            "  WHERE m.contact_id = c.id) FROM contacts c " + where + " ORDER BY c.id")
        return [
            Contact(id=r[0], name=r[1], number=r[2], fields=json.loads(r[3]), birthday=r[4],
                    notes=r[5], groups=tuple(sorted(json.loads(r[6] or "[]"))))
            for r in self.db.execute(sql, params).fetchall()
        ]

    # ---- groups
    def create_group(self, name: str, description: str = "") -> int:
        """The group's id, creating it if there is none of this name."""
        name = name.strip()
        if not name:
            raise PoolError("a group needs a name", code="group_name_missing")
        refuse_nul("the group name", name, description)
        with transaction(self.db):
            self.db.execute(
                "INSERT OR IGNORE INTO groups (name, description, created_at) VALUES (?, ?, ?)",
                [name, description, now_iso()])
        return self._group_id(name)

    def rename_group(self, name: str, new_name: str) -> None:
        """Give a group another name; its members stay. PoolError if the name is taken."""
        new_name = new_name.strip()
        if not new_name:
            raise PoolError("a group needs a name", code="group_name_missing")
        refuse_nul("the group name", new_name)
        group_id = self._group_id(name)
        if new_name == name:
            return
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM groups WHERE name = ?", [new_name]).fetchone():
                raise PoolError(f"there is already a group named {new_name!r}",
                                code="group_exists", params={"name": new_name})
            self.db.execute("UPDATE groups SET name = ? WHERE id = ?", [new_name, group_id])

    def delete_group(self, name: str) -> None:
        """Delete a group; its contacts stay in the address book."""
        group_id = self._group_id(name)
        with transaction(self.db):
            self.db.execute("DELETE FROM group_members WHERE group_id = ?", [group_id])
            self.db.execute("DELETE FROM groups WHERE id = ?", [group_id])

    def groups(self) -> list[dict[str, Any]]:
        """Every group with its member count, as dicts (`group_list` for typed ones)."""
        return [g.to_dict() for g in self.group_list()]

    def group_list(self) -> list[Group]:
        """Every group with its member count, by name."""
        rows = self.db.execute(
            "SELECT g.name, g.description, COUNT(m.contact_id) FROM groups g"
            " LEFT JOIN group_members m ON m.group_id = g.id GROUP BY g.id ORDER BY g.name").fetchall()
        return [Group(r[0], r[1], r[2]) for r in rows]

    def add_to_group(self, group: str, numbers: Iterable[str]) -> int:
        """Put existing contacts (by number) into a group, creating the group; returns how many.
        One transaction: a number that is no contact adds nobody and leaves no new group."""
        with transaction(self.db):
            contacts = [self.get(n) for n in numbers]
            group_id = self.create_group(group)
            for contact in contacts:
                self._join(group_id, contact.id)
        return len(contacts)

    def remove_from_group(self, group: str, numbers: Iterable[str]) -> int:
        group_id = self._group_id(group)
        contacts = [self.get(n) for n in numbers]
        with transaction(self.db):
            for contact in contacts:
                self.db.execute("DELETE FROM group_members WHERE group_id = ? AND contact_id = ?",
                                [group_id, contact.id])
        return len(contacts)

    def select(self, selection: Selection) -> list[Contact]:
        """Contacts in any included group and in no excluded group, each once."""
        include = [self._group_id(g) for g in selection.include]
        exclude = [self._group_id(g) for g in selection.exclude]
        if not include:
            return []
        sql = f"WHERE c.id IN (SELECT contact_id FROM group_members WHERE group_id IN ({_marks(include)}))"
        if exclude:
            sql += (" AND c.id NOT IN (SELECT contact_id FROM group_members"
                    f" WHERE group_id IN ({_marks(exclude)}))")
        return self._select(sql, include + exclude)

    def _group_id(self, name: str, create: bool = False) -> int:
        refuse_nul("the group name", name)
        row = self.db.execute("SELECT id FROM groups WHERE name = ?", [name]).fetchone()
        if row is None:
            if create:
                return self.create_group(name)
            raise NotFound(f"no group named {name!r}", code="group_not_found",
                           params={"name": name})
        return int(row[0])

    def _join(self, group_id: int, contact_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO group_members (group_id, contact_id) VALUES (?, ?)",
                        [group_id, contact_id])


def _marks(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


def parse_selection(text: str) -> Selection:
    """Read group arithmetic such as `家长+教师-毕业班` into a Selection."""
    include: list[str] = []
    exclude: list[str] = []
    sign, name = "+", ""
    for char in text + "+":
        if char in "+-":
            if name.strip():
                (include if sign == "+" else exclude).append(name.strip())
            sign, name = char, ""
        else:
            name += char
    return Selection(tuple(include), tuple(exclude))


def parse_selections(expressions: str | Iterable[str]) -> Selection:
    """One Selection from one or several group expressions (`家长+教师`, `-毕业班`)."""
    if isinstance(expressions, str):
        expressions = [expressions]
    include: list[str] = []
    exclude: list[str] = []
    for expression in expressions:
        selection = parse_selection(expression)
        include += selection.include
        exclude += selection.exclude
    return Selection(tuple(include), tuple(exclude))
