"""How a campaign is doing (progress for the live display and `status --json`) and its final report.

Both read the spool's `messages`, `inbound` and the `optouts` tables; nothing here writes.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from modempool.operator.campaigns import Campaigns
from modempool.operator.db import now_iso

PENDING = ("queued", "sending")
STATES = ("queued", "sending", "sent", "delivered", "failed", "expired", "cancelled", "ambiguous")
RATE_WINDOW = timedelta(minutes=5)


def progress(spool: Any, campaign_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Counts by state, held count, send rate over the last 5 minutes and an ETA in seconds."""
    campaigns = Campaigns(spool)
    campaign = campaigns.get(campaign_id)
    now = now or datetime.now(timezone.utc)
    counts = dict.fromkeys(STATES, 0)
    for state, count in spool.db.execute(
            "SELECT state, COUNT(*) FROM messages WHERE campaign_id = ? GROUP BY state",
            [campaign_id]).fetchall():
        counts[state] = count
    held = spool.db.execute("SELECT COUNT(*) FROM messages WHERE campaign_id = ? AND held = 1"
                            " AND state = 'queued'", [campaign_id]).fetchone()[0]
    recent = spool.db.execute(
        "SELECT COUNT(*) FROM messages WHERE campaign_id = ? AND sent_at >= ?",
        [campaign_id, now_iso(now - RATE_WINDOW)]).fetchone()[0]
    total = sum(counts.values())
    pending = counts["queued"] + counts["sending"]
    rate = recent / (RATE_WINDOW.total_seconds() / 60)
    state = campaign.state.value
    if state == "running" and total and not pending:
        state = "finished"
    return {
        "campaign": campaign_id, "name": campaign.name, "state": state, "total": total,
        **counts, "held": held, "pending": pending,
        "done": total - pending, "rate_per_minute": round(rate, 1),
        "eta_seconds": round(pending / rate * 60) if rate and pending and state == "running" else None,
    }


def all_progress(spool: Any) -> list[dict[str, Any]]:
    """Progress of every campaign that is running or paused (for `status --json`)."""
    return [progress(spool, c.id) for c in Campaigns(spool).list()
            if c.state.value in ("running", "paused")]


def report(spool: Any, campaign_id: int) -> dict[str, Any]:
    """Delivered, failed with reasons, replies and opt-outs since the campaign started, per recipient."""
    campaign = Campaigns(spool).get(campaign_id)
    since = campaign.started_at or campaign.created_at
    rows = spool.db.execute(
        "SELECT m.id, m.to_number, m.state, m.error, m.sim, m.sent_at, m.delivered_at, m.attempts,"
        " c.name FROM messages m LEFT JOIN contacts c ON c.number = m.to_number"
        " WHERE m.campaign_id = ? ORDER BY m.id", [campaign_id]).fetchall()
    numbers = {r[1] for r in rows}
    replies: dict[str, list[str]] = {}
    for sender, text in spool.db.execute(
            "SELECT sender, text FROM inbound WHERE stored_at >= ? ORDER BY id", [since]).fetchall():
        if sender in numbers:
            replies.setdefault(sender, []).append(text)
    opted = {r[0]: r[1] for r in spool.db.execute(
        "SELECT number, created_at FROM optouts WHERE created_at >= ?", [since]).fetchall()
        if r[0] in numbers}
    recipients = [{
        "message_id": r[0], "to": r[1], "name": r[8] or "", "state": r[2], "error": r[3] or "",
        "sim": r[4] or "", "sent_at": r[5] or "", "delivered_at": r[6] or "", "attempts": r[7],
        "replies": replies.get(r[1], []), "opted_out": r[1] in opted,
    } for r in rows]
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

