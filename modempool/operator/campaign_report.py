"""How a campaign is doing (progress for the live display and `status --json`) and its final report.

Both ask the spool (`spool.reports`) and read the address book and opt-outs; nothing here writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from modempool.numbers import DEFAULT_REGION
from modempool.operator.campaigns import Campaign, Campaigns
from modempool.operator.contacts import AddressBook
from modempool.operator.optout import OptOutList
from modempool.spool.model import from_text, to_text

PENDING = ("queued", "sending")
STATES = ("queued", "sending", "sent", "delivered", "failed", "expired", "cancelled", "ambiguous")
RATE_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a campaign is: its messages by state, why the queued ones wait, and the rate
    and ETA measured over the last minutes of sending."""

    campaign: int
    name: str
    state: str                      # draft, running, paused, cancelled, or finished
    counts: dict[str, int]          # every state of STATES, zeros included
    held: int = 0                   # queued but paused
    scheduled: int = 0              # queued for a later time (start time or rate spacing)
    quiet_hours: int = 0            # queued and kept out of quiet hours (now: `quiet_now`)
    quiet_now: bool = False
    rate_per_minute: float = 0.0
    eta_seconds: int | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        return sum(self.counts[s] for s in PENDING)

    @property
    def done(self) -> int:
        return self.total - self.pending

    def waiting(self) -> str:
        """Why queued messages wait, in words ('' when nothing is held back)."""
        reasons = []
        if self.held:
            reasons.append(f"{self.held} paused")
        if self.scheduled:
            reasons.append(f"{self.scheduled} scheduled later")
        if self.quiet_hours and self.quiet_now:
            reasons.append(f"{self.quiet_hours} in quiet hours")
        return ", ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign, "name": self.name, "state": self.state,
            "total": self.total, **self.counts, "held": self.held, "scheduled": self.scheduled,
            "quiet_hours": self.quiet_hours if self.quiet_now else 0, "pending": self.pending,
            "done": self.done, "waiting": self.waiting(), "rate_per_minute": self.rate_per_minute,
            "eta_seconds": self.eta_seconds,
        }


def progress(spool: Any, campaign_id: int, *, now: datetime | None = None,
             config: Any = None) -> Progress:
    """Counts by state, why the queued wait, the send rate and an ETA in seconds.

    The rate is measured from the first send of the last five minutes, not over the whole
    window, so that a campaign that started a minute ago does not look five times slower."""
    campaign = Campaigns(spool).get(campaign_id)
    now = now or datetime.now(timezone.utc)
    counts = dict.fromkeys(STATES, 0)
    counts.update(spool.reports.campaign_counts(campaign_id))
    waiting = spool.reports.campaign_waiting(campaign_id, now)
    recent, first = spool.reports.campaign_sent_since(campaign_id, now - RATE_WINDOW)
    minutes = (now - from_text(first)).total_seconds() / 60 if first else 0.0
    rate = recent / max(minutes, 1.0)   # below a minute of sending, count a minute
    state = campaign.state.value
    pending = counts["queued"] + counts["sending"]
    if state == "running" and sum(counts.values()) and not pending:
        state = "finished"
    movable = pending - waiting["held"]
    return Progress(
        campaign=campaign_id, name=campaign.name, state=state, counts=counts,
        held=waiting["held"], scheduled=waiting["scheduled"], quiet_hours=waiting["quiet_hours"],
        quiet_now=bool(config is not None and config.is_quiet(now)),
        rate_per_minute=round(rate, 1),
        eta_seconds=round(movable / rate * 60) if rate and movable and state == "running" else None)


def all_progress(spool: Any, config: Any = None) -> list[Progress]:
    """Progress of every campaign that is running or paused (for `status`)."""
    return [progress(spool, c.id, config=config) for c in Campaigns(spool).list()
            if c.state.value in ("running", "paused")]


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """What became of one message of a campaign: its state, why it failed, the replies its
    recipient sent since the campaign started, whether they opted out."""

    message_id: int
    to: str
    state: str
    error: str                          # '' when none
    sim: str                            # '' before a SIM took it
    sent_at: datetime | None
    delivered_at: datetime | None
    attempts: int
    name: str                           # the address book's, '' for a number not in it
    replies: tuple[str, ...] = ()
    opted_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "to": self.to, "state": self.state,
                "error": self.error, "sim": self.sim, "sent_at": to_text(self.sent_at) or "",
                "delivered_at": to_text(self.delivered_at) or "", "attempts": self.attempts,
                "name": self.name, "replies": list(self.replies), "opted_out": self.opted_out}


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """A campaign's messages counted by state, with replies and opt-outs."""

    recipients: int
    queued: int
    sending: int
    sent: int
    delivered: int
    failed: int
    expired: int
    cancelled: int
    ambiguous: int
    failure_reasons: dict[str, int]     # reason -> messages, most common first
    replies: int
    repliers: int
    opt_outs: int
    stopped_at_send: int                # queued, then refused as claimed (opted out meanwhile)

    @property
    def went_out(self) -> int:
        return self.sent + self.delivered

    def to_dict(self) -> dict[str, Any]:
        return {"recipients": self.recipients, **{s: getattr(self, s) for s in STATES},
                "went_out": self.went_out, "failure_reasons": dict(self.failure_reasons),
                "replies": self.replies, "repliers": self.repliers, "opt_outs": self.opt_outs,
                "stopped_at_send": self.stopped_at_send}


@dataclass(frozen=True, slots=True)
class Exported:
    """Where a report's per-recipient rows were written, and how many."""

    path: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows}


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """A campaign's outcome (`Pool.campaign_report`): the campaign, the summary, each recipient;
    `exported` when the rows were also written to a file."""

    campaign: Campaign
    summary: ReportSummary
    recipients: tuple[RecipientOutcome, ...]
    exported: Exported | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"campaign": self.campaign.as_dict(), "summary": self.summary.to_dict(),
               "recipients": [r.to_dict() for r in self.recipients]}
        if self.exported is not None:
            out["exported"] = self.exported.to_dict()
        return out


def report(spool: Any, campaign_id: int, region: str = DEFAULT_REGION) -> CampaignReport:
    """Delivered, failed with reasons, replies and opt-outs since the campaign started, per recipient."""
    campaign = Campaigns(spool).get(campaign_id)
    since = campaign.started_at or campaign.created_at
    messages = spool.reports.campaign_messages(campaign_id)
    numbers = {m["to"] for m in messages}
    replies: dict[str, list[str]] = {}
    for sender, text in spool.reports.received_since(since):
        if sender in numbers:
            replies.setdefault(sender, []).append(text)
    opted = {r["number"] for r in OptOutList(spool.db, region).optouts()
             if r["created_at"] >= since and r["number"] in numbers}
    book = AddressBook(spool.db, region)
    names = {c.number: c.name for c in book.list()} if messages else {}
    recipients = tuple(RecipientOutcome(
        message_id=m["message_id"], to=m["to"], state=m["state"], error=m["error"] or "",
        sim=m["sim"] or "", sent_at=from_text(m["sent_at"]),
        delivered_at=from_text(m["delivered_at"]), attempts=m["attempts"],
        name=names.get(m["to"], ""), replies=tuple(replies.get(m["to"], [])),
        opted_out=m["to"] in opted) for m in messages)
    states = Counter(r.state for r in recipients)
    reasons = Counter(r.error or "unknown" for r in recipients if r.state == "failed")
    summary = ReportSummary(
        recipients=len(recipients), **{s: states.get(s, 0) for s in STATES},
        failure_reasons=dict(reasons.most_common()),
        replies=sum(len(v) for v in replies.values()), repliers=len(replies),
        opt_outs=len(opted),
        # queued, then refused as they were claimed (an opt-out or blacklisting meanwhile)
        stopped_at_send=sum(r.state == "cancelled" and r.error.startswith(
            ("opted out at", "on the blacklist")) for r in recipients))
    return CampaignReport(campaign, summary, recipients)


REPORT_COLUMNS = ("to", "name", "state", "error", "sim", "sent_at", "delivered_at", "attempts",
                  "replies", "opted_out")


def export_report(spool: Any, campaign_id: int, path: str | Path) -> int:
    """Write the per-recipient report to CSV or XLSX (by extension); returns rows written."""
    from modempool.operator.spreadsheets import write_table

    rows = ([row[c] if c != "replies" else " | ".join(row[c]) for c in REPORT_COLUMNS]
            for row in (r.to_dict() for r in report(spool, campaign_id).recipients))
    return write_table(path, REPORT_COLUMNS, rows)

