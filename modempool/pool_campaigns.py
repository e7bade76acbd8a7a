"""The pool's campaigns part: campaigns (群发) and their saved templates as a person runs them,
with what people type read here (numbers separated by commas, group expressions like
"家长-毕业班", start and end times in `[pool] timezone`). `Pool` holds it as `pool.campaign_desk`
and keeps each call under its front-door name (`pool.start_campaign(7)` is
`pool.campaign_desk.start(7)`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.errors import PoolError
from modempool.when import parse_when

if TYPE_CHECKING:
    from modempool.operator.campaign_plan import CampaignPreview
    from modempool.operator.campaign_report import CampaignReport, Progress
    from modempool.operator.campaigns import Campaign, CampaignStart
    from modempool.operator.templates import Template
    from modempool.pool import Pool

__all__ = ["CampaignOverview", "PoolCampaigns"]


@dataclass(frozen=True, slots=True)
class CampaignOverview:
    """A saved campaign with how far it got."""

    campaign: Campaign
    progress: Progress

    def to_dict(self) -> dict[str, Any]:
        progress = self.progress.to_dict()
        return {**self.campaign.as_dict(), **{key: progress[key] for key in (
            "state", "total", "pending", "sent", "delivered", "failed")}}


class PoolCampaigns:
    """Create, preview, start, pause, resume, cancel and re-run campaigns, their progress and
    report, and the saved templates; the rules are the operator modules' (`Campaigns`,
    `CampaignTemplates`), bound to the pool's spool and config."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def create(self, name: str, template: str | None = None, *,
               from_template: str | int | None = None, numbers: Iterable[str] = (),
               groups: str | Iterable[str] = (), sheet: str | Path | None = None,
               mapping: dict[str, str] | None = None, kind: str | None = None,
               start: datetime | str | None = None, end: datetime | str | None = None,
               quiet_hours: bool | None = None, rate_per_minute: float | None = None,
               sims: Iterable[str] = (), priority: int = -1) -> Campaign:
        """Save a campaign (a draft: nothing is sent until `start`). `numbers` may
        be comma-separated (， too), `groups` expressions like "家长-毕业班", `start` / `end`
        times as typed, read in `[pool] timezone`. Unknown SIMs are refused here.
        `from_template` (a saved template's name or id) gives the text, and the kind unless
        `kind` is given; the campaign keeps its own copy of the text."""
        from modempool.operator.contacts import parse_selections

        if from_template is not None:
            saved = self.pool.templates.find(from_template)
            template, kind = saved.text, kind or saved.kind
        if template is None:
            raise PoolError("a campaign needs a message template (or a saved one)",
                            code="template_missing")
        kind = kind or "marketing"

        sims = list(sims)
        tz = self.pool.config.tz
        listed = [n.strip() for item in numbers for n in str(item).replace("，", ",").split(",")
                  if n.strip()]
        return self.pool.campaigns.create(
            name, template, numbers=listed, groups=parse_selections(groups), sheet=sheet,
            mapping=mapping, kind=kind, start_at=parse_when(start, tz), end_at=parse_when(end, tz),
            quiet_hours=quiet_hours, rate_per_minute=rate_per_minute, sims=sims or None,
            priority=priority)

    def overview(self) -> list[CampaignOverview]:
        """Every saved campaign with its progress, oldest first."""
        from modempool.operator.campaign_report import progress

        return [CampaignOverview(c, progress(self.pool.spool, c.id, config=self.pool.config))
                for c in self.pool.campaigns.list()]

    def preview(self, campaign_id: int, *, sample: int = 3) -> CampaignPreview:
        """What to check before starting: recipients after dedupe and opt-outs, SMS parts,
        `sample` rendered texts, problems."""
        from modempool.operator.campaign_plan import preview

        campaigns = self.pool.campaigns
        return preview(self.pool.spool.db, campaigns.get(campaign_id), self.pool.config, sample=sample,
                       region=campaigns.region)

    def start(self, campaign_id: int, *, skip_problems: bool = False) -> CampaignStart:
        """Queue every recipient not yet queued; safe to repeat (after a crash it fills in what
        is missing, 断点续发). Sensitive words always block, other problems unless
        `skip_problems` (CampaignBlocked lists them); unknown SIMs are refused. A campaign
        a sender made stays its: its messages are the sender's (`campaign_owner`)."""
        from modempool.account_campaigns import start_for_its_owner

        return start_for_its_owner(self.pool, campaign_id, skip_problems=skip_problems)

    def pause(self, campaign_id: int) -> Campaign:
        """Hold the campaign's queued messages."""
        return self.pool.campaigns.pause(campaign_id)

    def resume(self, campaign_id: int) -> Campaign:
        """Release a paused campaign's messages."""
        return self.pool.campaigns.resume(campaign_id)

    def cancel(self, campaign_id: int) -> int:
        """Cancel the campaign and its queued messages; returns how many were dropped."""
        return self.pool.campaigns.cancel(campaign_id)

    def rerun(self, campaign_id: int, name: str | None = None) -> Campaign:
        """A new draft copied from a saved campaign, to send it again."""
        return self.pool.campaigns.rerun(campaign_id, name)

    def progress(self, campaign_id: int) -> Progress:
        """Counts by state, why the queued wait, the send rate and an ETA."""
        from modempool.operator.campaign_report import progress

        return progress(self.pool.spool, campaign_id, config=self.pool.config)

    def report(self, campaign_id: int, *,
               export_to: str | Path | None = None) -> CampaignReport:
        """Delivered, failed with reasons, replies, opt-outs; with `export_to` the
        per-recipient rows are also written to that CSV or XLSX (`exported` says where)."""
        import dataclasses

        from modempool.operator.campaign_report import Exported, export_report, report

        result = report(self.pool.spool, campaign_id, self.pool.config.region)
        if export_to is None:
            return result
        rows = export_report(self.pool.spool, campaign_id, export_to)
        return dataclasses.replace(result, exported=Exported(str(export_to), rows))

    def add_template(self, name: str, text: str, kind: str = "notice") -> Template:
        """Save a campaign template (短信模板); PoolError if the name is taken or the text
        is no template (an unnamed or malformed field)."""
        return self.pool.templates.add(name, text, kind)

    def edit_template(self, name_or_id: str | int, *, rename: str | None = None,
                      text: str | None = None, kind: str | None = None) -> Template:
        """Change a saved template's name, text or kind (what is not given stays);
        campaigns made from it keep their own text."""
        return self.pool.templates.change(name_or_id, name=rename, text=text, kind=kind)

    def remove_template(self, name_or_id: str | int) -> Template:
        """Delete a saved template (campaigns made from it keep their text); returns it."""
        saved = self.pool.templates.find(name_or_id)
        self.pool.templates.remove(saved.id)
        return saved
