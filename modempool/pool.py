"""The front door: `Pool` is what a program (the CLI, the HTTP API, the web console, a script)
holds to use a modem pool. It owns the typed configuration and the spool underneath.

    from modempool import Pool

    with Pool.open("modempool.toml") as pool:
        [message] = pool.send("13800138000", "您好，您的验证码是 123456")
        result = pool.wait([message.id], timeout=60)

Every rule that protects people lives in the pool and only there: numbers are normalised, SIM
names checked, blacklisted and (when `[optout] block_direct` is set) opted-out numbers refused,
each with a `PoolError` that says which number and why, before anything is stored. Front ends
translate arguments and print results; they decide nothing.

The pool holds its parts, each in a file of its own, and keeps their calls under its own names
(`PartCall`): sending and its rules (`sending_desk`, pool_sending.py), the address book and
opt-outs (`people_desk`, pool_people.py), the inbox and history (`history_desk`,
pool_history.py), auto-replies, forwarding and recurring jobs (`automation_desk`,
pool_automation.py), campaigns (`campaign_desk`, pool_campaigns.py); its status is built in
pool_status.py, imported (with the campaign reports and the daemon's liveness it reads) by
`status()` alone, so that a command that asks nothing of the daemon does not load them.

Each operation returns a typed, frozen result (`Message`, `WaitResult`, `Status`,
`CampaignPreview`, `CampaignStart`, `CampaignReport`, `JobRun`, `Group`, `OptOut`,
`BlacklistEntry`, `AutoReplyEntry`, ...; all importable from `modempool`), read by its
attributes; its `to_dict()` is what the CLI's `--json` and the HTTP API print.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modempool.config import Config, load_config
from modempool.errors import PoolError
from modempool.part_call import PartCall
from modempool.pool_automation import PoolAutomation
from modempool.pool_campaigns import CampaignOverview, PoolCampaigns
from modempool.pool_history import PoolHistory
from modempool.pool_people import PoolPeople
from modempool.pool_sending import PoolSending
from modempool.spool import Message, MessageState, Spool

if TYPE_CHECKING:
    from modempool.account_pool import AccountPool
    from modempool.accounts import Account
    from modempool.dispatch.requests import UssdAnswer
    from modempool.operator.autoreply import AutoReplies
    from modempool.operator.backup import BackupResult
    from modempool.operator.campaigns import Campaigns
    from modempool.operator.contacts import AddressBook
    from modempool.operator.forwarding import ForwardTargets
    from modempool.operator.optout import OptOutList
    from modempool.operator.recurring import Jobs
    from modempool.operator.templates import CampaignTemplates
    from modempool.pool_status import SimStatus, Status

__all__ = ["CampaignOverview", "Pool"]   # `Status`, `SimStatus`: from modempool


class Pool:
    """A modem pool: its configuration and its spool. `Pool.open(path)` or `Pool(config)`."""

    def __init__(self, config: Config, *, spool: Spool | None = None) -> None:
        self.config = config
        self._spool = spool
        self._create = True
        self.sending_desk = PoolSending(self)
        self.campaign_desk = PoolCampaigns(self)
        self.people_desk = PoolPeople(self)
        self.history_desk = PoolHistory(self)
        self.automation_desk = PoolAutomation(self)

    @classmethod
    def open(cls, path: str | Path | None = None, *, spool_path: str | Path | None = None,
             create: bool = True) -> Pool:
        """The pool a config file describes (None: ./modempool.toml, then ~/.config/modempool/);
        `spool_path` opens another spool file with the same configuration. `create=False`
        (commands that only read): a missing spool reads as empty and no file is created."""
        config = load_config(path)
        spool = None
        if spool_path is not None:
            spool = Spool(spool_path, region=config.region, tz=config.tz,
                          synchronous=config.synchronous, max_parts=config.max_parts,
                          create=create)
        pool = cls(config, spool=spool)
        pool._create = create
        return pool

    @property
    def spool(self) -> Spool:
        """The storage engine underneath, opened on first use."""
        if self._spool is None:
            self._spool = self.config.open_spool(create=self._create)
        return self._spool

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sending: the part `sending_desk` (pool_sending.py) ---------------------------------
    send = PartCall("sending_desk", "send")
    queue = PartCall("sending_desk", "queue")
    send_many = PartCall("sending_desk", "send_many")
    queue_many = PartCall("sending_desk", "queue_many")
    queue_chunks = PartCall("sending_desk", "queue_chunks")
    check_recipients = PartCall("sending_desk", "check_recipients")
    refusals = PartCall("sending_desk", "refusals")
    wait = PartCall("sending_desk", "wait")

    # ---- the queue -----------------------------------------------------------------------

    def get(self, message_id: int) -> Message:
        """One message (NotFound if there is none with this id)."""
        return self.spool.get(message_id)

    def messages(self, *, state: MessageState | str | None = None, campaign: int | None = None,
                 limit: int | None = None) -> list[Message]:
        """Messages oldest first, of one state and/or campaign; the last `limit` of them."""
        return self.spool.list(state=state, campaign_id=campaign, limit=limit)

    def why_waiting(self, message: Message, now: datetime | None = None) -> str:
        """Why a queued message is not going out yet ('' when nothing holds it back): its
        campaign is paused, it is scheduled later, or it keeps out of quiet hours now."""
        if message.state is not MessageState.QUEUED:
            return ""
        now = now or datetime.now(self.config.tz).astimezone(self.config.tz)
        if message.held:
            return "paused (its campaign is paused)"
        if message.not_before and message.not_before > now:
            return "scheduled"
        if message.quiet_hours and self.config.is_quiet(now):
            return "quiet hours"
        return ""

    def counts(self) -> dict[str, int]:
        """How many messages are in each state (every state, zeros included)."""
        return self.spool.counts()

    def for_account(self, account: Account) -> AccountPool:
        """The pool as one API account sees it (its SIMs, quotas, own messages): an
        `AccountPool` (modempool/account_pool.py)."""
        from modempool.account_pool import AccountPool

        return AccountPool(self, account)

    def cancel(self, message_id: int) -> Message:
        """Cancel a queued message (StateConflict once a modem has it)."""
        return self.spool.cancel(message_id)

    def retry(self, message_id: int) -> Message:
        """Queue a failed, expired or ambiguous message again; an ambiguous one may then
        arrive twice (that is the caller's decision)."""
        return self.spool.retry(message_id)

    # ---- how the pool is -----------------------------------------------------------------

    def status(self) -> Status:
        """Whether the daemon runs, every configured or seen SIM (with no daemon running, a
        SIM's state is unknown), the queue, the campaigns running or paused, and how many
        received SMS have hooks still to run (the oldest's age)."""
        from modempool.pool_status import read_status

        return read_status(self.spool, self.config)

    # ---- the operator's parts -------------------------------------------------------------
    # Each is the library object for one subject, bound to this pool's spool and config, so
    # `pool.contacts.upsert(...)`, `pool.campaigns.start(1)`, `pool.optouts.add_to_blacklist(...)`.

    @property
    def contacts(self) -> AddressBook:
        """The address book: contacts, groups, selections, import and export."""
        from modempool.operator.contacts import AddressBook

        return AddressBook(self.spool.db, self.config.region)

    @property
    def optouts(self) -> OptOutList:
        """Opt-outs (退订) and the blacklist."""
        from modempool.operator.optout import OptOutList

        return OptOutList(self.spool.db, self.config.region)

    @property
    def campaigns(self) -> Campaigns:
        """Campaigns: create, preview, start, pause, resume, cancel, progress, report."""
        from modempool.operator.campaigns import Campaigns

        return Campaigns(self.spool, self.config)

    @property
    def templates(self) -> CampaignTemplates:
        """Saved campaign templates: add, update, remove, list."""
        from modempool.operator.templates import CampaignTemplates

        return CampaignTemplates(self.spool.db)

    @property
    def forwarding(self) -> ForwardTargets:
        """The numbers received SMS are forwarded to: the config's and those added here."""
        from modempool.operator.forwarding import ForwardTargets

        return ForwardTargets(self.spool.db, self.config.region, self.config.forward.to)

    @property
    def autoreplies(self) -> AutoReplies:
        """Auto-reply rules stored in the spool (`autoreply_rules()` adds the config's)."""
        from modempool.operator.autoreply import AutoReplies

        return AutoReplies(self.spool.db)

    @property
    def jobs(self) -> Jobs:
        """Recurring jobs: birthday greetings, daily and weekly notices."""
        from modempool.operator.recurring import Jobs

        return Jobs(self.spool.db, self.config.region, self.config.tz)

    # ---- the operator's work, as a person asks for it: the parts `people_desk` ------------
    # (pool_people.py), `history_desk` (pool_history.py), `automation_desk`
    # (pool_automation.py) and `campaign_desk` (pool_campaigns.py). Values come as people type
    # them: group expressions ("家长+教师-毕业班"), numbers separated by commas, birthdays
    # ("5月17日"), times ("2026-12-01 09:00", in `[pool] timezone`).
    save_contact = PartCall("people_desk", "save_contact")
    remove_contact = PartCall("people_desk", "remove_contact")
    groups = PartCall("people_desk", "groups")
    create_group = PartCall("people_desk", "create_group")
    rename_group = PartCall("people_desk", "rename_group")
    delete_group = PartCall("people_desk", "delete_group")
    add_to_group = PartCall("people_desk", "add_to_group")
    remove_from_group = PartCall("people_desk", "remove_from_group")
    import_contacts = PartCall("people_desk", "import_contacts")
    export_contacts = PartCall("people_desk", "export_contacts")
    select_contacts = PartCall("people_desk", "select_contacts")
    add_optouts = PartCall("people_desk", "add_optouts")
    optout_list = PartCall("people_desk", "optout_list")
    remove_optout = PartCall("people_desk", "remove_optout")
    blacklist = PartCall("people_desk", "blacklist")
    add_to_blacklist = PartCall("people_desk", "add_to_blacklist")
    remove_from_blacklist = PartCall("people_desk", "remove_from_blacklist")
    import_blacklist = PartCall("people_desk", "import_blacklist")
    export_optouts = PartCall("people_desk", "export_optouts")

    inbox = PartCall("history_desk", "inbox")
    with_contacts = PartCall("history_desk", "with_contacts")
    history = PartCall("history_desk", "history")
    export_history = PartCall("history_desk", "export_history")
    threads = PartCall("history_desk", "threads")

    add_autoreply = PartCall("automation_desk", "add_autoreply")
    remove_autoreply = PartCall("automation_desk", "remove_autoreply")
    autoreply_rules = PartCall("automation_desk", "autoreply_rules")
    autoreply_log = PartCall("automation_desk", "autoreply_log")
    forward_targets = PartCall("automation_desk", "forward_targets")
    add_forward_target = PartCall("automation_desk", "add_forward_target")
    forward_leftovers = PartCall("automation_desk", "forward_leftovers")
    give_up_forward_leftovers = PartCall("automation_desk", "give_up_forward_leftovers")
    retry_forward_leftovers = PartCall("automation_desk", "retry_forward_leftovers")
    remove_forward_target = PartCall("automation_desk", "remove_forward_target")
    add_job = PartCall("automation_desk", "add_job")
    remove_job = PartCall("automation_desk", "remove_job")
    run_due_jobs = PartCall("automation_desk", "run_due_jobs")

    create_campaign = PartCall("campaign_desk", "create")
    campaign_overview = PartCall("campaign_desk", "overview")
    preview_campaign = PartCall("campaign_desk", "preview")
    start_campaign = PartCall("campaign_desk", "start")
    pause_campaign = PartCall("campaign_desk", "pause")
    resume_campaign = PartCall("campaign_desk", "resume")
    cancel_campaign = PartCall("campaign_desk", "cancel")
    rerun_campaign = PartCall("campaign_desk", "rerun")
    campaign_progress = PartCall("campaign_desk", "progress")
    campaign_report = PartCall("campaign_desk", "report")
    add_template = PartCall("campaign_desk", "add_template")
    edit_template = PartCall("campaign_desk", "edit_template")
    remove_template = PartCall("campaign_desk", "remove_template")

    # ---- backup ---------------------------------------------------------------------------

    def backup(self, path: str | Path, *, overwrite: bool = False) -> BackupResult:
        """A consistent copy of the spool, safe while the daemon runs. An SQLite spool's:
        a PostgreSQL one is backed up by the server's own tools (pg_dump, base backups)."""
        from modempool.operator.backup import backup

        if self.spool.path is None:
            raise PoolError(
                f"backup copies an SQLite spool file; this spool is the PostgreSQL database "
                f"{self.spool.engine.where}: back it up with pg_dump (see docs/scale-out.md, "
                "'Backing up')", code="backup_needs_sqlite")
        return backup(self.spool.path, path, overwrite=overwrite)

    # ---- the daemon's modems ---------------------------------------------------------------

    def ussd(self, sim: str, code: str, *, timeout: float = 60.0) -> UssdAnswer:
        """Run USSD `code` (such as *100#) on `sim` through the running daemon, which owns the
        modems, and return the decoded answer. DaemonNotRunning when no daemon runs;
        RequestFailed when the SIM is not up, the network refused or no answer came in time."""
        from modempool.dispatch.requests import ask_ussd

        self.config.check_sims([sim])
        return ask_ussd(self.spool, sim, code, silent_after=self.config.silent_after,
                        timeout=timeout)
