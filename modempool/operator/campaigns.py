"""Campaigns (群发): saved bulk sends with per-recipient text, started, paused, resumed, cancelled.

A campaign is a row in `campaigns`; starting it enqueues one spool message per recipient with the
client id `campaign:<id>:<e164>`. The spool ignores a client id it already holds, so starting again
after a crash, a restart or a second `start` sends nothing twice and fills in whatever is missing
(断点续发). Pause/resume hold/release its queued messages in the spool; cancel cancels them.
Planning (recipients, rendering, cost) is in `campaign_plan`, progress and reports in
`campaign_report`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from modempool.config import Config
from modempool.operator.campaign_plan import Plan, plan_campaign, template_fields
from modempool.operator.contacts import AddressBook, Selection
from modempool.errors import NotFound, PoolError
from modempool.operator.optout import OptOutList
from modempool.operator.db import ensure_schema, now_iso, parse_time, transaction
from modempool.spool.plain_text import refuse_nul

log = logging.getLogger("modempool.operator.campaigns")

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'marketing',      -- marketing | notice
    template TEXT NOT NULL,
    numbers TEXT NOT NULL DEFAULT '[]',          -- JSON list as typed by the user
    include_groups TEXT NOT NULL DEFAULT '[]',   -- JSON: A + B
    exclude_groups TEXT NOT NULL DEFAULT '[]',   -- JSON: − C
    sheet_path TEXT,
    sheet_rows TEXT NOT NULL DEFAULT '[]',       -- JSON rows read from the spreadsheet at creation
    sheet_rejected TEXT NOT NULL DEFAULT '[]',
    start_at TEXT,
    end_at TEXT,
    quiet_hours INTEGER NOT NULL DEFAULT 1,
    rate_per_minute REAL,
    sims TEXT,                                    -- JSON list of SIM names, NULL = any
    priority INTEGER NOT NULL DEFAULT -1,
    state TEXT NOT NULL DEFAULT 'draft',
    rerun_of INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    updated_at TEXT NOT NULL
);
"""

ENQUEUE_CHUNK = 1000


class CampaignState(str, Enum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class CampaignBlocked(PoolError):
    """A campaign that cannot start as it is; `.problems` lists why."""

    def __init__(self, message: str, problems: list[str], *, code: str = "campaign_problems",
                 params: dict[str, Any] | None = None) -> None:
        self.problems = problems
        super().__init__(message + ":\n" + "\n".join(f"  - {p}" for p in problems), code=code,
                         params={"count": len(problems), **(params or {})})


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    kind: str
    template: str
    numbers: tuple[str, ...]
    include_groups: tuple[str, ...]
    exclude_groups: tuple[str, ...]
    sheet_path: str | None
    sheet_rows: tuple[dict[str, Any], ...]
    sheet_rejected: tuple[dict[str, Any], ...]
    start_at: datetime | None
    end_at: datetime | None
    quiet_hours: bool
    rate_per_minute: float | None
    sims: tuple[str, ...] | None
    priority: int
    state: CampaignState
    created_at: str
    started_at: str | None
    rerun_of: int | None = None

    def client_id(self, number: str) -> str:
        return f"campaign:{self.id}:{number}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "template": self.template,
            "numbers": list(self.numbers), "include_groups": list(self.include_groups),
            "exclude_groups": list(self.exclude_groups), "sheet_path": self.sheet_path,
            "sheet_rows": len(self.sheet_rows), "start_at": _iso(self.start_at),
            "end_at": _iso(self.end_at), "quiet_hours": self.quiet_hours,
            "rate_per_minute": self.rate_per_minute, "sims": list(self.sims) if self.sims else None,
            "priority": self.priority, "state": self.state.value, "created_at": self.created_at,
            "started_at": self.started_at, "rerun_of": self.rerun_of,
        }

    to_dict = as_dict   # the name every result of `Pool` answers to


@dataclass(frozen=True, slots=True)
class CampaignStart:
    """What starting a campaign did (`Pool.start_campaign`): of its `recipients`, how many it
    queued now and how many an earlier start had queued (a second start queues none again)."""

    campaign: int
    recipients: int
    enqueued: int
    already_enqueued: int
    skipped_problems: int               # problems left out with `skip_problems`
    opted_out_removed: int

    def to_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "recipients": self.recipients,
                "enqueued": self.enqueued, "already_enqueued": self.already_enqueued,
                "skipped_problems": self.skipped_problems,
                "opted_out_removed": self.opted_out_removed}


def _iso(moment: datetime | None) -> str | None:
    return now_iso(moment) if moment else None


class Campaigns:
    """Campaign storage and lifecycle over a spool (`Spool` from modempool.spool)."""

    def __init__(self, spool: Any, config: Config | None = None, region: str | None = None) -> None:
        self.spool = spool
        self.db = spool.db
        self.config = config or Config.default()
        self.region = region or self.config.region
        ensure_schema(self.db, SCHEMA)
        AddressBook(self.db, self.region)  # the plan and report read contacts and opt-outs
        OptOutList(self.db, self.region)

    # ---- storage
    def create(self, name: str, template: str, *, numbers: Iterable[str] = (),
               groups: Selection = Selection(), sheet: str | Path | None = None,
               mapping: dict[str, str] | None = None, kind: str = "marketing",
               start_at: datetime | None = None, end_at: datetime | None = None,
               quiet_hours: bool | None = None, rate_per_minute: float | None = None,
               sims: Iterable[str] | None = None, priority: int = -1) -> Campaign:
        """Save a campaign (state draft). A spreadsheet is read now, so the file may move later;
        its rejected rows show up as problems in the preview. Quiet hours default on for
        marketing campaigns, off for notices. A SIM that is no configured modem is refused
        (UnknownSim), whichever front end asks."""
        sims, numbers = list(sims or ()), list(numbers)
        refuse_nul("the campaign's numbers", numbers)
        refuse_nul("the campaign name", name)
        refuse_nul("the campaign text", template)
        refuse_nul("the campaign's groups", list(groups.include), list(groups.exclude))
        refuse_nul("the campaign's column names", mapping or {})
        self.config.check_sims(sims)
        if kind not in ("marketing", "notice"):
            raise PoolError(f"campaign kind must be 'marketing' or 'notice', not {kind!r}",
                            code="campaign_kind", params={"kind": kind})
        if not template.strip():
            raise PoolError("a campaign needs a message template", code="template_missing")
        template_fields(template)
        if rate_per_minute is not None and rate_per_minute <= 0:
            raise PoolError("rate per minute must be positive", code="campaign_rate")
        if start_at and end_at and end_at <= start_at:
            raise PoolError("the end time must be after the start time", code="campaign_end")
        rows, rejected = self._read_sheet(sheet, mapping)
        if not (numbers or groups.include or rows or rejected):
            raise PoolError("a campaign needs recipients: numbers, groups or a spreadsheet",
                            code="campaign_no_recipients")
        now = now_iso()
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO campaigns (name, kind, template, numbers, include_groups, exclude_groups,"
                " sheet_path, sheet_rows, sheet_rejected, start_at, end_at, quiet_hours,"
                " rate_per_minute, sims, priority, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?)",
                [name, kind, template, _json(numbers), _json(list(groups.include)),
                 _json(list(groups.exclude)), str(sheet) if sheet else None, _json(rows),
                 _json(rejected), _iso(start_at), _iso(end_at),
                 int(kind == "marketing" if quiet_hours is None else quiet_hours),
                 rate_per_minute, _json(list(sims)) if sims else None, priority, now, now])
        return self.get(int(cur.lastrowid))

    def _read_sheet(self, sheet: str | Path | None, mapping: dict[str, str] | None):
        if sheet is None:
            return [], []
        from modempool.operator.importers import check_rows, read_table

        report = check_rows(read_table(sheet), mapping, region=self.region, path=str(sheet))
        rows = [{"line": r.line, "number": r.number, "name": r.name, "fields": r.fields}
                for r in report.accepted]
        return rows, [{"line": r.line, "reason": r.reason} for r in report.rejected]

    def get(self, campaign_id: int) -> Campaign:
        cur = self.db.execute("SELECT * FROM campaigns WHERE id = ?", [campaign_id])
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id}", code="campaign_not_found",
                           params={"id": campaign_id})
        return _campaign(dict(zip([d[0] for d in cur.description], row)))

    def list(self) -> list[Campaign]:
        cur = self.db.execute("SELECT * FROM campaigns ORDER BY id")
        names = [d[0] for d in cur.description]
        return [_campaign(dict(zip(names, row))) for row in cur.fetchall()]

    def rerun(self, campaign_id: int, name: str | None = None) -> Campaign:
        """A new draft campaign with the same recipients and template (a re-run sends again);
        UnknownSim if a SIM it was bound to is no longer configured."""
        refuse_nul("the campaign name", name)
        old = self.get(campaign_id)
        self.config.check_sims(old.sims or ())
        now = now_iso()
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO campaigns (name, kind, template, numbers, include_groups, exclude_groups,"
                " sheet_path, sheet_rows, sheet_rejected, start_at, end_at, quiet_hours,"
                " rate_per_minute, sims, priority, state, rerun_of, created_at, updated_at)"
                " SELECT ?, kind, template, numbers, include_groups, exclude_groups, sheet_path,"
                " sheet_rows, sheet_rejected, NULL, NULL, quiet_hours, rate_per_minute, sims,"
                " priority, 'draft', id, ?, ? FROM campaigns WHERE id = ?",
                [name or f"{old.name} (re-run)", now, now, campaign_id])
        return self.get(int(cur.lastrowid))

    # ---- lifecycle
    def plan(self, campaign_id: int) -> Plan:
        return plan_campaign(self.db, self.get(campaign_id), self.config, self.region)

    def start(self, campaign_id: int, *, now: datetime | None = None,
              skip_problems: bool = False,
              on_write: Callable[[list[int]], None] | None = None) -> CampaignStart:
        """Enqueue every recipient not yet enqueued; safe to call again at any time.

        Sensitive words always block; invalid numbers and missing template fields block unless
        `skip_problems` (those recipients are then left out). `on_write` is given the ids of
        each chunk's new messages in the transaction that queues them (an account records
        them as its own there)."""
        campaign = self.get(campaign_id)
        if campaign.state is CampaignState.CANCELLED:
            raise PoolError(f"campaign {campaign_id} was cancelled; re-run it to send again",
                            code="campaign_cancelled", params={"id": campaign_id})
        self.config.check_sims(campaign.sims or ())   # saved before a modem left the config
        plan = plan_campaign(self.db, campaign, self.config, self.region)
        if plan.sensitive:
            raise CampaignBlocked(f"campaign {campaign_id} contains sensitive words",
                                  ["sensitive words: " + ", ".join(plan.sensitive)],
                                  code="campaign_sensitive",
                                  params={"id": campaign_id, "words": ", ".join(plan.sensitive)})
        if plan.problems and not skip_problems:
            raise CampaignBlocked(f"campaign {campaign_id} has problems (fix them or skip them)",
                                  plan.problems, params={"id": campaign_id})
        now = now or datetime.now(timezone.utc)
        already = self.spool.reports.campaign_client_ids(campaign_id)
        todo = [r for r in plan.recipients if campaign.client_id(r.number) not in already]
        held = campaign.state is CampaignState.PAUSED
        if campaign.state is CampaignState.DRAFT:
            with transaction(self.db):
                self.db.execute(
                    "UPDATE campaigns SET state = 'running', started_at = COALESCE(started_at, ?),"
                    " updated_at = ? WHERE id = ?", [now_iso(now), now_iso(now), campaign_id])
        rows = self._rows(campaign, todo, now, held)
        enqueued = 0
        for index in range(0, len(rows), ENQUEUE_CHUNK):
            fresh = self.spool.messages.enqueue_fresh(rows[index:index + ENQUEUE_CHUNK])[1]
            if on_write is not None:
                on_write(fresh)
            enqueued += len(fresh)
        state = self.get(campaign_id).state  # paused or cancelled while we were enqueuing?
        if state is CampaignState.PAUSED:
            self.spool.hold(campaign_id)
        elif state is CampaignState.CANCELLED:
            self._cancel_queued(campaign_id)
        log.info("campaign %s: %d enqueued, %d were already in the spool", campaign_id,
                 enqueued, len(plan.recipients) - len(todo))
        return CampaignStart(campaign=campaign_id, recipients=len(plan.recipients),
                             enqueued=enqueued, already_enqueued=len(plan.recipients) - len(todo),
                             skipped_problems=len(plan.problems),
                             opted_out_removed=len(plan.excluded_optout))

    def _rows(self, campaign: Campaign, todo: list, now: datetime, held: bool) -> list[dict]:
        base = max(campaign.start_at or now, now)
        spacing = timedelta(minutes=1 / campaign.rate_per_minute) if campaign.rate_per_minute else None
        rows = []
        for index, recipient in enumerate(todo):
            if spacing is not None:
                not_before: datetime | None = base + spacing * index
            else:
                not_before = campaign.start_at if campaign.start_at and campaign.start_at > now else None
            rows.append({
                "to": recipient.number, "text": recipient.text,
                "client_id": campaign.client_id(recipient.number), "priority": campaign.priority,
                "not_before": not_before, "expires_at": campaign.end_at, "campaign_id": campaign.id,
                "quiet_hours": campaign.quiet_hours, "sims": list(campaign.sims) if campaign.sims else None,
                "held": held, "region": self.region,
            })
        return rows

    def pause(self, campaign_id: int) -> Campaign:
        self._set_state(campaign_id, CampaignState.PAUSED, allowed=(CampaignState.RUNNING,))
        self.spool.hold(campaign_id)
        return self.get(campaign_id)

    def resume(self, campaign_id: int) -> Campaign:
        self._set_state(campaign_id, CampaignState.RUNNING, allowed=(CampaignState.PAUSED,))
        self.spool.release(campaign_id)
        return self.get(campaign_id)

    def cancel(self, campaign_id: int) -> int:
        """Cancel the campaign and every message of it still queued; returns how many. One
        transaction: a campaign is never left cancelled with messages still queued."""
        with transaction(self.db):
            self._set_state(campaign_id, CampaignState.CANCELLED,
                            allowed=(CampaignState.DRAFT, CampaignState.RUNNING,
                                     CampaignState.PAUSED))
            return self._cancel_queued(campaign_id)

    def _cancel_queued(self, campaign_id: int) -> int:
        from modempool.spool import MessageState
        from modempool.spool.model import StateConflict

        cancelled = 0
        with transaction(self.db):  # one commit for thousands of cancels
            for message in self.spool.list(state=MessageState.QUEUED, campaign_id=campaign_id):
                try:
                    self.spool.cancel(message.id)
                    cancelled += 1
                except StateConflict as exc:  # taken by a modem meanwhile: it goes out
                    log.info("campaign %s: message %s not cancelled: %s", campaign_id, message.id, exc)
        return cancelled

    def _set_state(self, campaign_id: int, state: CampaignState,
                   allowed: tuple[CampaignState, ...]) -> None:
        current = self.get(campaign_id).state
        if current not in allowed:
            raise PoolError(f"campaign {campaign_id} is {current.value}; cannot make it {state.value}",
                            code="campaign_state", params={"id": campaign_id,
                                                           "state": current.value,
                                                           "wanted": state.value})
        with transaction(self.db):
            self.db.execute("UPDATE campaigns SET state = ?, updated_at = ? WHERE id = ?",
                            [state.value, now_iso(), campaign_id])


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _campaign(row: dict[str, Any]) -> Campaign:
    return Campaign(
        id=row["id"], name=row["name"], kind=row["kind"], template=row["template"],
        numbers=tuple(json.loads(row["numbers"])),
        include_groups=tuple(json.loads(row["include_groups"])),
        exclude_groups=tuple(json.loads(row["exclude_groups"])),
        sheet_path=row["sheet_path"], sheet_rows=tuple(json.loads(row["sheet_rows"])),
        sheet_rejected=tuple(json.loads(row["sheet_rejected"])),
        start_at=parse_time(row["start_at"]), end_at=parse_time(row["end_at"]),
        quiet_hours=bool(row["quiet_hours"]), rate_per_minute=row["rate_per_minute"],
        sims=tuple(json.loads(row["sims"])) if row["sims"] else None, priority=row["priority"],
        state=CampaignState(row["state"]), created_at=row["created_at"],
        started_at=row["started_at"], rerun_of=row["rerun_of"],
    )
