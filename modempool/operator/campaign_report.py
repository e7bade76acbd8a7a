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
from modempool.operator.campaigns import Campaigns
from modempool.operator.contacts import AddressBook
from modempool.operator.optout import OptOutList
from modempool.spool.model import from_text

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


def report(spool: Any, campaign_id: int, region: str = DEFAULT_REGION) -> dict[str, Any]:
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
    recipients = [{
        **m, "name": names.get(m["to"], ""), "error": m["error"] or "", "sim": m["sim"] or "",
        "sent_at": m["sent_at"] or "", "delivered_at": m["delivered_at"] or "",
        "replies": replies.get(m["to"], []), "opted_out": m["to"] in opted,
    } for m in messages]
    states = Counter(r["state"] for r in recipients)
    reasons = Counter(r["error"] or "unknown" for r in recipients if r["state"] == "failed")
    return {
        "campaign": campaign.as_dict(),
        "summary": {
            "recipients": len(recipients), **{s: states.get(s, 0) for s in STATES},
            "went_out": states.get("sent", 0) + states.get("delivered", 0),
            "failure_reasons": dict(reasons.most_common()),
            "replies": sum(len(v) for v in replies.values()),
            "repliers": len(replies),
            "opt_outs": len(opted),
            # queued, then refused as they were claimed (an opt-out or blacklisting meanwhile)
            "stopped_at_send": sum(r["state"] == "cancelled" and r["error"].startswith(
                ("opted out at", "on the blacklist")) for r in recipients),
        },
        "recipients": recipients,
    }


REPORT_COLUMNS = ("to", "name", "state", "error", "sim", "sent_at", "delivered_at", "attempts",
                  "replies", "opted_out")


def export_report(spool: Any, campaign_id: int, path: str | Path) -> int:
    """Write the per-recipient report to CSV or XLSX (by extension); returns rows written."""
    from modempool.operator.spreadsheets import write_table

    data = report(spool, campaign_id)
    rows = ([r[c] if c != "replies" else " | ".join(r[c]) for c in REPORT_COLUMNS]
            for r in data["recipients"])
    return write_table(path, REPORT_COLUMNS, rows)

