"""What one API account may do with the pool: `pool.for_account(account)` (an `AccountPool`).

It wraps the front door (`modempool.Pool`, which keeps the rules for everyone: numbers,
SIM names, blacklist, opt-outs) and adds the account's own: its role, its SIMs and quotas,
that it sees and cancels only its own messages (another account's message is "not found",
never "forbidden": its existence is not revealed), that its idempotency keys are its own.
The HTTP routes, the Kannel interface and the web console call this one object. It holds its
parts, each in a file of its own and readable alone:

- `rules` (`account_rules.py`): who may do what; `permissions()`;
- `sending` (`account_sending.py`): sends in one transaction with the quota, `recipients`;
- `messages` (`account_messages.py`): its messages, received SMS, SIMs and throughput;
- `people` (`account_people.py`): its conversations and the address book (a viewer reads,
  senders and admins change);
- `bank` (`account_bank.py`): campaigns (`campaign_desk`), opt-outs and the blacklist,
  history, auto-replies, forwarding, accounts, sessions, webhooks.

Each part's calls are also the pool's, under their long-standing names
(`account_pool.get(...)` is `account_pool.messages.get(...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modempool.account_bank import AccountBank
from modempool.account_messages import AccountMessages, AccountSim
from modempool.account_people import AccountPeople, Conversation, ConversationThread, ThreadItem
from modempool.account_rules import AccountRules
from modempool.account_sending import AccountSending, PlannedSend, Queued, QueuedBatch
from modempool.accounts import Account
from modempool.part_call import PartCall
from modempool.pool_status import late

if TYPE_CHECKING:
    from modempool.dispatch.liveness import DaemonLiveness
    from modempool.operator.campaign_report import Progress
    from modempool.pool_status import SimStatus

__all__ = ["AccountPool", "AccountSim", "AccountStatus", "Conversation", "ConversationThread",
           "PlannedSend", "Queued", "QueuedBatch", "ThreadItem"]


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """`Pool.status()` narrowed to one account, with its SIMs' parts sent in each of the
    last 60 minutes (`throughput`, oldest first)."""

    daemon: DaemonLiveness
    sims: tuple[SimStatus, ...]
    queue: dict[str, int]
    throughput: tuple[int, ...]
    campaigns: tuple[Progress, ...]
    # The received SMS whose handlers or forward command wait (`Status.hooks_pending` and
    # the rest): an admin's only, since the SMS may have come in on any SIM; None for other
    # accounts (not theirs to see: left out of `to_dict`).
    hooks_pending: int | None = None
    hooks_oldest_age: float | None = None
    commands_pending: int | None = None
    commands_oldest_age: float | None = None

    @property
    def hooks_late(self) -> bool:
        return late(self.hooks_pending or 0, self.hooks_oldest_age)

    @property
    def commands_late(self) -> bool:
        return late(self.commands_pending or 0, self.commands_oldest_age)

    def to_dict(self) -> dict[str, Any]:
        shown = {"daemon": self.daemon.to_dict(), "sims": [s.to_dict() for s in self.sims],
                 "queue": dict(self.queue), "throughput": list(self.throughput),
                 "campaigns": [c.to_dict() for c in self.campaigns]}
        if self.hooks_pending is not None:
            shown.update({key: getattr(self, key) for key in HOOKS_FIELDS})
        return shown


#: What an admin's status says of the received SMS whose hooks wait (`Status`'s fields).
HOOKS_FIELDS = ("hooks_pending", "hooks_oldest_age", "commands_pending", "commands_oldest_age")


class AccountPool:
    """The pool as one account sees it (the tables exist once `Accounts(spool)` was made)."""

    def __init__(self, pool: Any, account: Account) -> None:
        self.pool = pool
        self.spool = pool.spool
        self.config = pool.config
        self.account = account
        self.rules = AccountRules(account)
        self.sending = AccountSending(pool, account)
        self.messages = AccountMessages(pool, self.rules)
        self.people = AccountPeople(pool, self.rules, self.messages)
        self.bank = AccountBank(pool, self.rules)

    def status(self) -> AccountStatus:
        """The dashboard: the account's SIMs as `Pool.status` sees them (state with quarantine
        reason and until when, signal, operator, number, counters against quotas), the queue by
        state of the messages it may see, throughput over the last hour and the campaigns
        running or paused that it may see (`campaign_desk`: a sender's own); for an admin,
        the received SMS whose hooks wait."""
        whole = self.pool.status()
        sims = tuple(s for s in whole.sims if self.rules.sees_sim(s.name))
        everything = self.account.sees_all
        queue = whole.queue if everything else self.messages.counts()
        seen = None if everything else {c.id for c in self.bank.campaign_desk().list()}
        return AccountStatus(
            daemon=whole.daemon, sims=sims, queue=queue,
            throughput=tuple(self.messages.throughput([s.name for s in sims])),
            campaigns=tuple(c for c in whole.campaigns if seen is None or c.campaign in seen),
            **({key: getattr(whole, key) for key in HOOKS_FIELDS} if everything else {}))

    # ---- the parts' calls under their long-standing names -----------------------------------
    require_sender = PartCall("rules", "require_sender")
    require_admin = PartCall("rules", "require_admin")
    permissions = PartCall("rules", "permissions")

    send = PartCall("sending", "send")
    plan_send = PartCall("sending", "plan_send")
    send_chunks = PartCall("sending", "send_chunks")
    queued_pages = PartCall("sending", "queued_pages")
    recipients = PartCall("sending", "recipients")

    get = PartCall("messages", "get")
    parts = PartCall("messages", "parts")
    list = PartCall("messages", "list")
    page = PartCall("messages", "page")
    many = PartCall("messages", "many")
    cancel = PartCall("messages", "cancel")
    retry = PartCall("messages", "retry")
    client_id = PartCall("messages", "client_id")
    counts = PartCall("messages", "counts")
    inbound = PartCall("messages", "inbound")
    ussd = PartCall("messages", "ussd")
    sims = PartCall("messages", "sims")
    throughput = PartCall("messages", "throughput")

    conversations = PartCall("people", "conversations")
    thread = PartCall("people", "thread")
    contacts = PartCall("people", "contacts")
    contact = PartCall("people", "contact")
    groups = PartCall("people", "groups")
    upsert_contact = PartCall("people", "upsert_contact")
    remove_contact = PartCall("people", "remove_contact")
    create_group = PartCall("people", "create_group")
    rename_group = PartCall("people", "rename_group")
    delete_group = PartCall("people", "delete_group")
    add_to_group = PartCall("people", "add_to_group")
    remove_from_group = PartCall("people", "remove_from_group")
    export_contacts = PartCall("people", "export_contacts")
    preview_import = PartCall("people", "preview_import")
    confirm_import = PartCall("people", "confirm_import")

    templates = PartCall("bank", "templates")
    campaign_desk = PartCall("bank", "campaign_desk")
    add_optouts = PartCall("bank", "add_optouts")
    optout_list = PartCall("bank", "optout_list")
    blacklist = PartCall("bank", "blacklist")
    add_optout = PartCall("bank", "add_optout")
    add_to_blacklist = PartCall("bank", "add_to_blacklist")
    remove_optout = PartCall("bank", "remove_optout")
    remove_from_blacklist = PartCall("bank", "remove_from_blacklist")
    history = PartCall("bank", "history")
    export_history = PartCall("bank", "export_history")
    autoreply_rules = PartCall("bank", "autoreply_rules")
    add_autoreply = PartCall("bank", "add_autoreply")
    remove_autoreply = PartCall("bank", "remove_autoreply")
    autoreply_log = PartCall("bank", "autoreply_log")
    autoreply_rules_from_config = PartCall("bank", "autoreply_rules_from_config")
    forwarding = PartCall("bank", "forwarding")
    accounts = PartCall("bank", "accounts")
    sessions = PartCall("bank", "sessions")
    webhooks = PartCall("bank", "webhooks")
