"""Saved campaign templates (短信模板): a named message text with fields (`{name}家长您好…`),
kept for the next campaign of the same kind. `pool.templates` (or `CampaignTemplates(spool.db)`).

`campaign_templates`(id, name UNIQUE, text, kind, created_at, updated_at). A template is
checked as a campaign's is (`campaign_plan.template_fields`): fields need names, braces match.
Campaigns copy the text when they are created, so editing or deleting a template never
changes a campaign already made from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modempool.errors import NotFound, PoolError
from modempool.operator.campaign_plan import template_fields
from modempool.operator.db import ensure_schema, now_iso, transaction
from modempool.spool.plain_text import refuse_nul

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_templates (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'notice',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

KINDS = ("notice", "marketing")


@dataclass(frozen=True, slots=True)
class Template:
    id: int
    name: str
    text: str
    kind: str
    updated_at: str

    @property
    def fields(self) -> list[str]:
        """The fields a recipient needs (`name`, `班级`), in the order the text uses them."""
        return template_fields(self.text)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "text": self.text, "kind": self.kind,
                "fields": self.fields, "updated_at": self.updated_at}

    to_dict = as_dict   # the name every result of `Pool` answers to


class CampaignTemplates:
    """The saved templates in a spool's database (`spool.db`, either engine)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        ensure_schema(db, SCHEMA)

    def add(self, name: str, text: str, kind: str = "notice") -> Template:
        """Save a new template; PoolError if the name is taken or the text is no template."""
        name = self._check(name, text, kind)
        now = now_iso()
        with transaction(self.db):
            self._name_free(name)
            cursor = self.db.execute(
                "INSERT INTO campaign_templates (name, text, kind, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)", [name, text, kind, now, now])
        return self.get(int(cursor.lastrowid))

    def update(self, template_id: int, name: str, text: str, kind: str = "notice") -> Template:
        """Change a template's name, text and kind."""
        name = self._check(name, text, kind)
        with transaction(self.db):
            self.get(template_id)
            self._name_free(name, but=template_id)
            self.db.execute("UPDATE campaign_templates SET name = ?, text = ?, kind = ?,"
                            " updated_at = ? WHERE id = ?",
                            [name, text, kind, now_iso(), template_id])
        return self.get(template_id)

    def change(self, name_or_id: str | int, *, name: str | None = None, text: str | None = None,
               kind: str | None = None) -> Template:
        """Change what is given of a template found by name or id; the rest stays."""
        saved = self.find(name_or_id)
        return self.update(saved.id, name or saved.name, text or saved.text, kind or saved.kind)

    def remove(self, template_id: int) -> None:
        with transaction(self.db):
            if self.db.execute("DELETE FROM campaign_templates WHERE id = ?",
                               [template_id]).rowcount == 0:
                raise _missing(template_id)

    def get(self, template_id: int) -> Template:
        row = self.db.execute("SELECT id, name, text, kind, updated_at FROM campaign_templates"
                              " WHERE id = ?", [template_id]).fetchone()
        if row is None:
            raise _missing(template_id)
        return Template(*row)

    def find(self, name_or_id: str | int) -> Template:
        """A template by its name, or by its id (a number); NotFound if there is none."""
        row = self.db.execute("SELECT id, name, text, kind, updated_at FROM campaign_templates"
                              " WHERE name = ?", [str(name_or_id)]).fetchone()
        if row is not None:
            return Template(*row)
        if str(name_or_id).isdigit():
            return self.get(int(name_or_id))
        raise NotFound(f"no saved template named {str(name_or_id)!r}", code="template_not_found",
                       params={"id": name_or_id})

    def list(self) -> list[Template]:
        """Every template, by name."""
        rows = self.db.execute("SELECT id, name, text, kind, updated_at FROM campaign_templates"
                               " ORDER BY name").fetchall()
        return [Template(*row) for row in rows]

    @staticmethod
    def _check(name: str, text: str, kind: str) -> str:
        refuse_nul("the template name", name)
        refuse_nul("the template text", text)
        name = name.strip()
        if not name:
            raise PoolError("a template needs a name", code="template_name_missing")
        if not text.strip():
            raise PoolError("a template needs a message text", code="template_missing")
        if kind not in KINDS:
            raise PoolError(f"a template's kind is 'notice' or 'marketing', not {kind!r}",
                            code="campaign_kind", params={"kind": kind})
        template_fields(text)
        return name

    def _name_free(self, name: str, but: int | None = None) -> None:
        row = self.db.execute("SELECT id FROM campaign_templates WHERE name = ?", [name]).fetchone()
        if row is not None and row[0] != but:
            raise PoolError(f"there is already a template named {name!r}",
                            code="template_exists", params={"name": name})


def _missing(template_id: int) -> NotFound:
    return NotFound(f"no saved template {template_id}", code="template_not_found",
                    params={"id": template_id})
