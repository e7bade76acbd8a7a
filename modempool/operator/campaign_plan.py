"""Turning a campaign into the exact messages it will send: recipients, rendered texts, cost, problems.

Pure planning, no writes: `plan_campaign` merges explicit numbers, group arithmetic and spreadsheet
rows, removes duplicates and opted-out/blacklisted numbers, renders the template for each recipient
(`{name}` or any spreadsheet column, e.g. `{班级}`), adds the signature/footer and counts parts.
`preview` is what an operator reads before `start`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

from modempool.config import Config
from modempool.operator.compliance import SensitiveWords
from modempool.operator.contacts import AddressBook, Selection
from modempool.errors import InvalidNumber, PoolError, SpoolFailure
from modempool.numbers import DEFAULT_REGION, normalise
from modempool.operator.optout import OptOutList


def parts_of(text: str) -> int:
    """SMS parts a text needs (the pdu layer decides GSM-7/UCS2 and concatenation)."""
    try:
        from pdu import parts_needed
    except ImportError:  # pdu/__init__ may not re-export it
        from pdu.split import parts_needed
    return parts_needed(text).parts


def template_fields(template: str) -> list[str]:
    """Field names a template uses (`{name}`, `{班级}`), in order; PoolError if malformed."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise PoolError(f"template is malformed: {exc} (write a literal brace as {{{{ or }}}})",
                        code="template_malformed") from None
    for name in names:
        if name == "" or name.isdigit():
            raise PoolError("template fields need names, like {name}; {} or {0} is not allowed",
                            code="template_unnamed_field")
    return list(dict.fromkeys(n.split(".")[0].split("[")[0] for n in names))


class _Values(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def render(template: str, values: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The text for one recipient, or None and the list of fields it lacks."""
    missing = [f for f in template_fields(template) if values.get(f) in (None, "")]
    if missing:
        return None, missing
    return template.format_map(_Values({k: v for k, v in values.items()})), []


@dataclass(frozen=True, slots=True)
class Recipient:
    number: str
    name: str
    text: str
    parts: int
    source: str  # "number", "group", "sheet line N"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a plan: its English text (as `Plan.problems` lists it), and a code with
    the values of that text for a front end in another language (as a PoolError's)."""

    text: str
    code: str = "error"
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Plan:
    recipients: tuple[Recipient, ...]
    duplicates: int
    excluded_optout: tuple[str, ...]
    invalid: tuple[str, ...]            # "1380013: not a valid number" / "sheet line 4: ..."
    missing_fields: tuple[str, ...]     # "+86138... (sheet line 3): missing {班级}"
    sensitive: tuple[str, ...]          # words found in the template or rendered texts
    total_parts: int = 0
    notes: tuple[str, ...] = field(default=())
    coded: tuple[Problem, ...] = field(default=())   # `problems` with codes, in its order

    @property
    def problems(self) -> list[str]:
        out = [f"invalid: {p}" for p in self.invalid]
        out += [f"missing field: {p}" for p in self.missing_fields]
        if self.sensitive:
            out.append("sensitive words: " + ", ".join(self.sensitive))
        return out


def plan_campaign(db: Any, campaign: Any, config: Config | None = None,
                  region: str = DEFAULT_REGION) -> Plan:
    """Resolve a campaign's recipients and render every message (see module doc)."""
    book = AddressBook(db, region)
    candidates: list[tuple[str, dict[str, Any], str]] = []
    invalid: list[str] = []
    coded: list[Problem] = []
    for raw in campaign.numbers:
        try:
            candidates.append((normalise(raw, region), {}, "number"))
        except InvalidNumber as exc:
            invalid.append(str(exc))
            coded.append(Problem(f"invalid: {exc}", exc.code, exc.params))
    if campaign.include_groups:
        try:
            chosen = book.select(Selection(campaign.include_groups, campaign.exclude_groups))
        except SpoolFailure:
            raise   # the database's: no recipient is invalid for it
        except PoolError as exc:
            invalid.append(str(exc))
            coded.append(Problem(f"invalid: {exc}", exc.code, exc.params))
            chosen = []
        candidates += [(c.number, c.template_values(), "group") for c in chosen]
    for row in campaign.sheet_rows:
        values = {**row.get("fields", {}), "name": row.get("name", "")}
        candidates.append((row["number"], {k: v for k, v in values.items() if v not in (None, "")},
                           f"sheet line {row['line']}"))
    invalid += [f"sheet line {r['line']}: {r['reason']}" for r in campaign.sheet_rejected]
    coded += [Problem(f"invalid: sheet line {r['line']}: {r['reason']}")
              for r in campaign.sheet_rejected]
    # Contacts known in the address book lend their fields to bare numbers and sheet rows.
    merged: dict[str, tuple[dict[str, Any], str]] = {}
    duplicates = 0
    for number, values, source in candidates:
        if number in merged:
            duplicates += 1
            old_values, old_source = merged[number]
            merged[number] = ({**values, **old_values}, old_source)
        else:
            merged[number] = (values, source)
    blocked = OptOutList(db, region).blocked_for_campaigns()
    excluded = tuple(n for n in merged if n in blocked)
    config = config or Config.default()
    signature = config.signature
    marketing = campaign.kind == "marketing"
    words = SensitiveWords.from_config(config)
    recipients: list[Recipient] = []
    missing: list[str] = []
    lacks: list[Problem] = []
    for number, (values, source) in merged.items():
        if number in blocked:
            continue
        contact = book.find(number) if source != "group" else None
        if contact is not None:
            values = {**contact.template_values(), **values}
        values = {**values, "number": number}
        text, lacking = render(campaign.template, values)
        if text is None:
            missing.append(f"{number} ({source}): missing " + ", ".join("{%s}" % f for f in lacking))
            lacks.append(Problem(f"missing field: {missing[-1]}", "plan_missing_fields",
                                 {"number": number, "fields": ", ".join("{%s}" % f for f in lacking)}))
            continue
        text = signature.apply(text, marketing=marketing)
        recipients.append(Recipient(number, str(values.get("name", "")), text, parts_of(text), source))
    found = tuple(words.found_in_any([campaign.template, *(r.text for r in recipients)]))
    coded += lacks
    if found:
        coded.append(Problem("sensitive words: " + ", ".join(found), "plan_sensitive",
                             {"words": ", ".join(found)}))
    return Plan(tuple(recipients), duplicates, excluded, tuple(invalid), tuple(missing), found,
                sum(r.parts for r in recipients), coded=tuple(coded))


@dataclass(frozen=True, slots=True)
class Sample:
    """One rendered message of a preview: to whom, the contact's name, the text, its parts."""

    to: str
    name: str
    text: str
    parts: int

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.to, "name": self.name, "text": self.text, "parts": self.parts}


@dataclass(frozen=True, slots=True)
class CampaignPreview:
    """What an operator checks before starting a campaign (`Pool.preview_campaign`)."""

    campaign: int
    name: str
    recipients: int                     # after duplicates and opted-out numbers are removed
    duplicates_removed: int
    opted_out_removed: int              # opted out or blacklisted
    total_parts: int                    # SMS parts of every rendered message: the cost
    quiet_hours: bool
    rate_per_minute: float | None
    sims: tuple[str, ...] | None        # None: any SIM
    samples: tuple[Sample, ...]
    problems: tuple[str, ...]

    @property
    def can_start(self) -> bool:
        """No problem stands in the way (start with `skip_problems` otherwise)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign, "name": self.name, "recipients": self.recipients,
            "duplicates_removed": self.duplicates_removed,
            "opted_out_removed": self.opted_out_removed, "total_parts": self.total_parts,
            "quiet_hours": self.quiet_hours, "rate_per_minute": self.rate_per_minute,
            "sims": list(self.sims) if self.sims is not None else None,
            "samples": [s.to_dict() for s in self.samples], "problems": list(self.problems),
            "can_start": self.can_start,
        }


def preview(db: Any, campaign: Any, config: Config | None = None, *, sample: int = 3,
            region: str = DEFAULT_REGION) -> CampaignPreview:
    """What an operator checks before starting: counts, cost, sample texts, problems."""
    plan = plan_campaign(db, campaign, config, region)
    return CampaignPreview(
        campaign=campaign.id, name=campaign.name, recipients=len(plan.recipients),
        duplicates_removed=plan.duplicates, opted_out_removed=len(plan.excluded_optout),
        total_parts=plan.total_parts, quiet_hours=campaign.quiet_hours,
        rate_per_minute=campaign.rate_per_minute,
        sims=tuple(campaign.sims) if campaign.sims else None,
        samples=tuple(Sample(r.number, r.name, r.text, r.parts)
                      for r in plan.recipients[:sample]),
        problems=tuple(plan.problems))
