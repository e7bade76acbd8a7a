"""Campaigns as one account may see and run them: `account_pool.campaign_desk()`.

- An admin sees and runs every campaign (as `pool.campaigns`).
- A sender sees and runs its own: they go out through its SIMs only, count against its
  quota when started, and their messages are its messages (its message list, its history).
  Another account's campaign is "not found", as another account's message is.
- A viewer looks at every campaign (list, preview, progress, report) and changes none.

Who made a campaign is kept in `campaign_accounts`; a campaign with no row there was made
outside an account (the CLI, a script) and is the bank's: admins run it, viewers see it.

Whose its messages are (`campaign_owner`): a campaign made by a sender is that sender's, whoever
starts it (the sender, an admin in the console or API, the CLI), so its messages are in the
sender's list and counts and count towards its quota afterwards; a campaign an admin made, or
one made outside any account, is the bank's: its messages have no owner and count in the
global figures only. Only a sender's own start is checked against its quota.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from modempool.account_rules import quota_day_start
from modempool.accounts import Account, Forbidden, check_quota, sims_for_send
from modempool.errors import NotFound
from modempool.operator.db import ensure_schema, transaction
from modempool.spool.model import utcnow

if TYPE_CHECKING:
    from modempool.operator.campaign_plan import Plan
    from modempool.operator.campaign_report import CampaignReport
    from modempool.operator.campaigns import Campaign, CampaignStart
    from modempool.pool import Pool

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_accounts (
    campaign_id INTEGER PRIMARY KEY,
    account TEXT NOT NULL
);
"""


class AccountCampaigns:
    """The campaigns of one account, `pool` the front door (see the module's docstring)."""

    def __init__(self, pool: Pool, account: Account) -> None:
        self.pool = pool
        self.account = account
        self.store = pool.campaigns
        self.db = self.store.db
        ensure_schema(self.db, SCHEMA)

    # ---- looking ----------------------------------------------------------------------------

    def list(self) -> list[Campaign]:
        """The campaigns the account may see, oldest first."""
        if self._sees_every():
            return self.store.list()
        mine = self._owned()
        return [c for c in self.store.list() if c.id in mine]

    def get(self, campaign_id: int) -> Campaign:
        """The campaign if the account may see it, else NotFound (its existence not revealed)."""
        campaign = self.store.get(campaign_id)
        if not self._sees_every() and campaign_id not in self._owned():
            raise NotFound(f"no campaign {campaign_id}", code="campaign_not_found",
                           params={"id": campaign_id})
        return campaign

    def plan(self, campaign_id: int) -> Plan:
        self.get(campaign_id)
        return self.store.plan(campaign_id)

    def progress(self, campaign_id: int) -> Any:
        """Sent, delivered, failed, ambiguous, queued and the ETA (`campaign_report.Progress`)."""
        from modempool.operator.campaign_report import progress

        self.get(campaign_id)
        return progress(self.pool.spool, campaign_id, config=self.pool.config)

    def report(self, campaign_id: int) -> CampaignReport:
        """Each recipient's outcome, replies and opt-outs (`campaign_report.report`)."""
        from modempool.operator.campaign_report import report

        self.get(campaign_id)
        return report(self.pool.spool, campaign_id)

    def may_run(self, campaign_id: int) -> bool:
        """Whether the account may start, pause, resume or cancel this campaign."""
        if not self.account.may_send:
            return False
        return self.account.sees_all or campaign_id in self._owned()

    # ---- running -------------------------------------------------------------------------------

    def create(self, name: str, template: str, *, sims: Iterable[str] | None = None,
               **options: Any) -> Campaign:
        """A draft campaign (`Campaigns.create`'s options), owned by the account; a sender
        bound to some SIMs sends through them (asking for another is SimNotAllowed)."""
        allowed = sims_for_send(self.account, list(sims) if sims else None)   # viewer: Forbidden
        with transaction(self.db):
            campaign = self.store.create(name, template, sims=allowed, **options)
            self.db.execute("INSERT INTO campaign_accounts (campaign_id, account) VALUES (?, ?)",
                            [campaign.id, self.account.name])
        return campaign

    def start(self, campaign_id: int, *, skip_problems: bool = False) -> CampaignStart:
        """Enqueue what is not yet enqueued (safe to repeat). A sender's quota counts the
        messages this start adds; they are recorded as the sender's messages in the
        transaction that queues them (a message is never seen without its owner: its
        sender's list, counts and quota always have it). The check, the messages and their
        owner are one transaction: two starts at once cannot together pass the quota, and a
        refused start queues nothing."""
        self._may_change(campaign_id)
        if self.account.sees_all:
            return start_for_its_owner(self.pool, campaign_id, skip_problems=skip_problems)
        limited = self.account.per_minute is not None or self.account.per_day is not None
        spool = self.pool.spool
        with spool.transaction() as conn:
            waiting = self._not_yet_enqueued(campaign_id) if limited else 0
            now = utcnow()
            if waiting:
                check_quota(spool.engine, conn, self.account, waiting, now,
                            quota_day_start(now, self.pool.config.tz))
            return self.store.start(
                campaign_id, skip_problems=skip_problems,
                on_write=lambda ids: spool.scoped.own(self.account.name, ids, now))

    def pause(self, campaign_id: int) -> Campaign:
        self._may_change(campaign_id)
        return self.store.pause(campaign_id)

    def resume(self, campaign_id: int) -> Campaign:
        self._may_change(campaign_id)
        return self.store.resume(campaign_id)

    def cancel(self, campaign_id: int) -> int:
        self._may_change(campaign_id)
        return self.store.cancel(campaign_id)

    # ---- the rules underneath ----------------------------------------------------------------

    def _sees_every(self) -> bool:
        return self.account.sees_all or not self.account.may_send   # admins; viewers look

    def _owned(self) -> set[int]:
        return {row[0] for row in self.db.execute(
            "SELECT campaign_id FROM campaign_accounts WHERE account = ?",
            [self.account.name]).fetchall()}

    def _may_change(self, campaign_id: int) -> None:
        self.get(campaign_id)
        if not self.may_run(campaign_id):
            raise Forbidden(f"account {self.account.name!r} may look at campaign {campaign_id}, "
                            "not run it", code="may_not_run_campaign",
                            params={"account": self.account.name, "id": campaign_id})

    def _not_yet_enqueued(self, campaign_id: int) -> int:
        campaign = self.store.get(campaign_id)
        already = self.pool.spool.reports.campaign_client_ids(campaign_id)
        return sum(1 for r in self.store.plan(campaign_id).recipients
                   if campaign.client_id(r.number) not in already)


def campaign_owner(pool: Pool, campaign_id: int) -> str | None:
    """The account a campaign's messages belong to: the sender that made it; None for a
    campaign an admin made or one made outside any account (the bank's: see the module)."""
    from modempool.accounts import Accounts

    db = pool.campaigns.db
    ensure_schema(db, SCHEMA)
    row = db.execute("SELECT account FROM campaign_accounts WHERE campaign_id = ?",
                     [campaign_id]).fetchone()
    if row is None:
        return None
    try:
        maker = Accounts(pool.spool).get(row[0])
    except NotFound:   # removed since: its campaign is the bank's now
        return None
    return None if maker.sees_all else maker.name


def start_for_its_owner(pool: Pool, campaign_id: int, *,
                        skip_problems: bool = False) -> CampaignStart:
    """Start a campaign as the bank does (an admin, the CLI: no quota): its messages are
    recorded as its owner's (`campaign_owner`), if it has one, in the transaction that
    queues them."""
    owner = campaign_owner(pool, campaign_id)
    if owner is None:
        return pool.campaigns.start(campaign_id, skip_problems=skip_problems)
    spool = pool.spool
    with spool.transaction():
        now = utcnow()
        return pool.campaigns.start(campaign_id, skip_problems=skip_problems,
                                    on_write=lambda ids: spool.scoped.own(owner, ids, now))
