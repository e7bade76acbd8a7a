"""modempool: drive a bank of GSM modems to send and receive SMS.

`from modempool import Pool` is the front door (see `modempool.pool`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modempool.errors import PoolError

if TYPE_CHECKING:
    from modempool.account_pool import (AccountPool, AccountSim, AccountStatus, Conversation,
                                        ConversationThread)
    from modempool.dispatch.requests import UssdAnswer
    from modempool.operator.autoreply import AutoReplyEntry, Rule
    from modempool.operator.backup import BackupResult
    from modempool.operator.campaign_plan import CampaignPreview, Sample
    from modempool.operator.campaign_report import (CampaignReport, Exported, Progress,
                                                    RecipientOutcome, ReportSummary)
    from modempool.operator.campaigns import Campaign, CampaignBlocked, CampaignStart
    from modempool.operator.contacts import Contact, Group
    from modempool.operator.forwarding import ForwardTarget
    from modempool.operator.history import Thread
    from modempool.operator.importers import ImportReport
    from modempool.operator.optout import BlacklistEntry, OptOut
    from modempool.operator.recurring import Job, JobRun
    from modempool.operator.templates import Template
    from modempool.pool import Pool
    from modempool.pool_campaigns import CampaignOverview
    from modempool.pool_history import Received
    from modempool.pool_sending import WaitResult
    from modempool.pool_status import SimStatus, Status
    from modempool.spool.history import HistoryEntry

#: What `Pool`'s methods return, and the module each is defined in (imported on first use,
#: so that `import modempool.numbers` stays light).
_RESULTS = {
    "Pool": "modempool.pool", "WaitResult": "modempool.pool_sending",
    "Received": "modempool.pool_history",
    "CampaignOverview": "modempool.pool_campaigns",
    "Status": "modempool.pool_status", "SimStatus": "modempool.pool_status",
    "Contact": "modempool.operator.contacts", "Group": "modempool.operator.contacts",
    "OptOut": "modempool.operator.optout", "BlacklistEntry": "modempool.operator.optout",
    "Campaign": "modempool.operator.campaigns", "CampaignStart": "modempool.operator.campaigns",
    "CampaignPreview": "modempool.operator.campaign_plan",
    "Sample": "modempool.operator.campaign_plan",
    "Progress": "modempool.operator.campaign_report",
    "CampaignReport": "modempool.operator.campaign_report",
    "ReportSummary": "modempool.operator.campaign_report",
    "RecipientOutcome": "modempool.operator.campaign_report",
    "Exported": "modempool.operator.campaign_report",
    "Job": "modempool.operator.recurring", "JobRun": "modempool.operator.recurring",
    "AutoReplyEntry": "modempool.operator.autoreply",
    "ForwardTarget": "modempool.operator.forwarding", "Template": "modempool.operator.templates",
    "Rule": "modempool.operator.autoreply", "ImportReport": "modempool.operator.importers",
    "BackupResult": "modempool.operator.backup",
    "HistoryEntry": "modempool.spool.history", "Thread": "modempool.operator.history",
    "CampaignBlocked": "modempool.operator.campaigns", "UssdAnswer": "modempool.dispatch.requests",
    "AccountPool": "modempool.account_pool", "AccountSim": "modempool.account_pool",
    "AccountStatus": "modempool.account_pool", "Conversation": "modempool.account_pool",
    "ConversationThread": "modempool.account_pool",
}

__all__ = ["PoolError", *_RESULTS]


def __getattr__(name: str) -> Any:
    if name in _RESULTS:
        import importlib

        return getattr(importlib.import_module(_RESULTS[name]), name)
    raise AttributeError(f"module 'modempool' has no attribute {name!r}")
