"""Recurring jobs: birthday greetings (生日祝福) and daily/weekly notices.

A job is a row in `jobs`. The daemon calls `run_due_jobs(spool, config, now)` about once a minute;
a job is due once per local day, from its time of day on (weekly jobs on their weekday). Each
recipient's message gets the client id `job:<id>:<local date>:<e164>`, so calling it twice, or
again after a crash, never sends a greeting twice. Opted-out and blacklisted numbers are skipped.
As for a campaign, a `[sensitive]` word in the template or a rendered text (signature included)
queues nothing that day: the run is logged and reported with the words.
A birthday on 29 February is greeted on 28 February in other years.
"""

from __future__ import annotations

import calendar
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timezone, tzinfo
from typing import Any

from modempool.operator.campaign_plan import render, template_fields
from modempool.operator.compliance import SensitiveWords
from modempool.operator.contacts import AddressBook, Contact, Selection, parse_birthday
from modempool.errors import NotFound, PoolError
from modempool.config import Config
from modempool.numbers import DEFAULT_REGION, normalise
from modempool.operator.db import ensure_schema, now_iso, transaction
from modempool.operator.optout import OptOutList
from modempool.spool.plain_text import refuse_nul

log = logging.getLogger("modempool.operator.recurring")

KINDS = ("birthday", "daily", "weekly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                -- birthday | daily | weekly
    template TEXT NOT NULL,
    at TEXT NOT NULL,                  -- local time of day, HH:MM
    weekday INTEGER,                   -- weekly: 0 = Monday
    numbers TEXT NOT NULL DEFAULT '[]',
    include_groups TEXT NOT NULL DEFAULT '[]',
    exclude_groups TEXT NOT NULL DEFAULT '[]',
    marketing INTEGER NOT NULL DEFAULT 0,   -- 1: quiet hours and signature apply
    sims TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_run TEXT,                     -- local date of the last run
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    name: str
    kind: str
    template: str
    at: time
    weekday: int | None
    numbers: tuple[str, ...]
    groups: Selection
    marketing: bool
    sims: tuple[str, ...] | None
    enabled: bool
    last_run: str | None

    def due(self, local: datetime) -> bool:
        if not self.enabled or self.last_run == local.date().isoformat():
            return False
        if self.kind == "weekly" and local.weekday() != self.weekday:
            return False
        return local.time() >= self.at

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "template": self.template,
                "at": self.at.strftime("%H:%M"),
                "weekday": WEEKDAYS[self.weekday] if self.weekday is not None else None,
                "numbers": list(self.numbers), "include_groups": list(self.groups.include),
                "exclude_groups": list(self.groups.exclude), "marketing": self.marketing,
                "enabled": self.enabled, "last_run": self.last_run}

    to_dict = as_dict   # the name every result of `Pool` answers to


def birthday_today(contact: Contact, day: date) -> bool:
    """Whether `day` is the contact's birthday; ValueError if the stored birthday is no date
    (kept raw by versions before the address book checked it)."""
    birthday = parse_birthday(contact.birthday or "")
    if birthday is None:
        return False
    month, dom = map(int, birthday[-5:].split("-"))
    if (month, dom) == (day.month, day.day):
        return True
    return (month, dom) == (2, 29) and not calendar.isleap(day.year) and (day.month, day.day) == (2, 28)


class Jobs:
    def __init__(self, db: Any, region: str = DEFAULT_REGION, tz: tzinfo | None = None) -> None:
        self.db = db
        self.region = region
        self.tz = tz  # [pool] timezone: jobs run at their local time there (None: the system's)
        ensure_schema(db, SCHEMA)

    def add(self, name: str, kind: str, template: str, *, at: str = "09:00",
            weekday: str | int | None = None, numbers: tuple[str, ...] = (),
            groups: Selection = Selection(), marketing: bool | None = None,
            sims: tuple[str, ...] | None = None, now: datetime | None = None) -> Job:
        """Save a job. One created after today's time first runs tomorrow."""
        for what, value in (("name", name), ("text", template), ("time", at),
                            ("weekday", weekday), ("groups", [*groups.include, *groups.exclude])):
            refuse_nul(f"the job's {what}", value)
        if kind not in KINDS:
            raise PoolError(f"job kind must be one of {', '.join(KINDS)}")
        template_fields(template)
        moment = _parse_at(at)
        if kind == "weekly":
            weekday = _weekday(weekday)
        elif weekday is not None:
            raise PoolError("only weekly jobs take a weekday")
        if kind != "birthday" and not (numbers or groups.include):
            raise PoolError("a daily or weekly job needs numbers or groups")
        for number in numbers:
            normalise(number, self.region)
        local = (now or datetime.now(timezone.utc)).astimezone(self.tz)
        last_run = local.date().isoformat() if local.time() >= moment else None
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO jobs (name, kind, template, at, weekday, numbers, include_groups,"
                " exclude_groups, marketing, sims, last_run, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, kind, template, moment.strftime("%H:%M"), weekday, _j(list(numbers)),
                 _j(list(groups.include)), _j(list(groups.exclude)),
                 int(kind == "birthday" if marketing is None else marketing),
                 _j(list(sims)) if sims else None, last_run, now_iso(now)])
        return self.get(int(cur.lastrowid))

    def get(self, job_id: int) -> Job:
        jobs = self._select("WHERE id = ?", [job_id])
        if not jobs:
            raise NotFound(f"no job {job_id}")
        return jobs[0]

    def list(self) -> list[Job]:
        return self._select("", [])

    def remove(self, job_id: int) -> None:
        with transaction(self.db):
            if self.db.execute("DELETE FROM jobs WHERE id = ?", [job_id]).rowcount == 0:
                raise NotFound(f"no job {job_id}")

    def set_enabled(self, job_id: int, enabled: bool) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE jobs SET enabled = ? WHERE id = ?", [int(enabled), job_id])

    def _select(self, where: str, params: list[Any]) -> list[Job]:
        cur = self.db.execute(
            "SELECT id, name, kind, template, at, weekday, numbers, include_groups, exclude_groups,"
            f" marketing, sims, enabled, last_run FROM jobs {where} ORDER BY id", params)
        return [Job(r[0], r[1], r[2], r[3], _parse_at(r[4]), r[5], tuple(json.loads(r[6])),
                    Selection(tuple(json.loads(r[7])), tuple(json.loads(r[8]))), bool(r[9]),
                    tuple(json.loads(r[10])) if r[10] else None, bool(r[11]), r[12])
                for r in cur.fetchall()]

    def recipients(self, job: Job, day: date) -> list[tuple[str, dict[str, Any]]]:
        book = AddressBook(self.db, self.region)
        if job.kind == "birthday":
            pool = book.select(job.groups) if job.groups.include else book.list()
            chosen, unreadable = [], []
            for contact in pool:
                try:
                    if birthday_today(contact, day):
                        chosen.append((contact.number, contact.template_values()))
                except ValueError:
                    unreadable.append(f"{contact.number} ({contact.birthday!r})")
            if unreadable:   # one line a run; the other contacts are greeted
                log.warning("job %s (%s): skipped %d contact(s) whose birthday is not a date: %s",
                            job.id, job.name, len(unreadable), ", ".join(unreadable))
        else:
            chosen = [(c.number, c.template_values()) for c in book.select(job.groups)]
            for raw in job.numbers:
                number = normalise(raw, self.region)
                contact = book.find(number)
                chosen.append((number, contact.template_values() if contact else {"number": number}))
        blocked = OptOutList(self.db, self.region).blocked_for_campaigns()
        unique: dict[str, dict[str, Any]] = {}
        for number, values in chosen:
            if number not in blocked:
                unique.setdefault(number, values)
        return list(unique.items())


@dataclass(frozen=True, slots=True)
class JobRun:
    """What one due job queued (`Pool.run_due_jobs`): nothing when its texts hold a sensitive
    word; `skipped` names the recipients whose text lacked a field."""

    job: int
    name: str
    enqueued: int
    skipped: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "name": self.name, "enqueued": self.enqueued,
                "skipped": list(self.skipped), "sensitive": list(self.sensitive)}


def run_due_jobs(spool: Any, config: Config | None = None,
                 now: datetime | None = None) -> list[JobRun]:
    """Enqueue the messages of every job due at `now` (aware; default: current time).

    Call it from the daemon about once a minute; repeated calls are harmless."""
    now = now or datetime.now(timezone.utc)
    config = config or Config.default()
    local = now.astimezone(config.tz)   # the local day and time of [pool] timezone
    jobs = Jobs(spool.db, config.region, config.tz)
    signature = config.signature
    words = SensitiveWords.from_config(config)
    results: list[JobRun] = []
    for job in jobs.list():
        if not job.due(local):
            continue
        day = local.date().isoformat()
        rows, skipped = [], []
        for number, values in jobs.recipients(job, local.date()):
            text, missing = render(job.template, {**values, "number": number})
            if text is None:
                skipped.append(f"{number}: missing " + ", ".join(missing))
                continue
            rows.append({"to": number, "text": signature.apply(text, marketing=job.marketing),
                         "client_id": f"job:{job.id}:{day}:{number}", "quiet_hours": job.marketing,
                         "sims": list(job.sims) if job.sims else None, "priority": -1})
        # The campaigns' rule: a sensitive word in the template or a rendered text sends none.
        sensitive = words.found_in_any([job.template, *(row["text"] for row in rows)])
        ids = spool.enqueue_many(rows) if rows and not sensitive else []
        with transaction(spool.db):
            spool.db.execute("UPDATE jobs SET last_run = ? WHERE id = ?", [day, job.id])
        for problem in skipped:
            log.warning("job %s (%s): skipped %s", job.id, job.name, problem)
        if sensitive:
            log.warning("job %s (%s): nothing queued today: sensitive words %s", job.id,
                        job.name, ", ".join(sensitive))
        log.info("job %s (%s): %d message(s) queued", job.id, job.name, len(ids))
        results.append(JobRun(job.id, job.name, len(ids), tuple(skipped), tuple(sensitive)))
    return results


def _parse_at(text: str) -> time:
    try:
        hour, minute = str(text).strip().split(":")
        return time(int(hour), int(minute))
    except ValueError:
        raise PoolError(f"time of day {text!r} must look like 09:00") from None


def _weekday(value: str | int | None) -> int:
    if isinstance(value, int) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value.strip().lower()[:3] in WEEKDAYS:
        return WEEKDAYS.index(value.strip().lower()[:3])
    raise PoolError("a weekly job needs a weekday: mon, tue, wed, thu, fri, sat or sun")


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
