"""The front door: `Pool` is what a program (the CLI, the HTTP API, the web console, a script)
holds to use a modem pool. It owns the typed configuration and the spool underneath.

    from modempool import Pool

    with Pool.open("modempool.toml") as pool:
        [message] = pool.send("13800138000", "您好，您的验证码是 123456")
        result = pool.wait([message.id], timeout=60)

Every rule that protects people lives here and only here: numbers are normalised, SIM names
checked, blacklisted and (when `[optout] block_direct` is set) opted-out numbers refused, each
with a `PoolError` that says which number and why, before anything is stored. Front ends
translate arguments and print results; they decide nothing.

Each operation returns a typed, frozen result (`Message`, `WaitResult`, `Status`,
`CampaignPreview`, `CampaignStart`, `CampaignReport`, `JobRun`, `Group`, `OptOut`,
`BlacklistEntry`, `AutoReplyEntry`, ...; all importable from `modempool`), read by its
attributes; its `to_dict()` is what the CLI's `--json` and the HTTP API print.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.batch_send import QueuedIds, fan_out, queue_chunks
from modempool.config import Config, load_config
from modempool.dispatch.requests import UssdAnswer
from modempool.errors import (Blacklisted, InvalidNumber, OptedOut, PoolError, Refused,
                              RefusedMany)
from modempool.numbers import normalise
from modempool.part_call import PartCall
from modempool.pool_campaigns import CampaignOverview, PoolCampaigns
from modempool.pool_status import SimStatus, Status, read_status
from modempool.spool import (FINAL_STATES, SUCCESS_STATES, InboundMessage, Message,
                             MessageState, Spool)
from modempool.when import check_window, parse_when

if TYPE_CHECKING:
    from modempool.account_pool import AccountPool
    from modempool.accounts import Account
    from modempool.operator.autoreply import AutoReplies, AutoReplyEntry, Rule
    from modempool.operator.backup import BackupResult
    from modempool.operator.campaigns import Campaigns
    from modempool.operator.contacts import AddressBook, Contact, Group
    from modempool.operator.forwarding import ForwardTarget, ForwardTargets
    from modempool.operator.history import Query, Thread
    from modempool.operator.importers import ImportReport
    from modempool.operator.optout import BlacklistEntry, OptOut, OptOutList
    from modempool.operator.recurring import Job, JobRun, Jobs
    from modempool.operator.templates import CampaignTemplates
    from modempool.spool.history import HistoryEntry

__all__ = ["CampaignOverview", "Pool", "Received", "SimStatus", "Status", "WaitResult"]


@dataclass(frozen=True, slots=True)
class WaitResult:
    """What `Pool.wait` saw last: each message, and whether the wait ran out of time first."""

    messages: tuple[Message, ...]
    timed_out: bool = False

    @property
    def pending(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.state not in FINAL_STATES)

    @property
    def all_succeeded(self) -> bool:
        """Every message went out (sent or delivered)."""
        return all(m.state in SUCCESS_STATES for m in self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages], "timed_out": self.timed_out,
                "all_succeeded": self.all_succeeded}


@dataclass(frozen=True, slots=True)
class Received:
    """One received SMS as the spool keeps it (`message`), with the address book's name and
    groups of its sender ('' and () for a number not in it)."""

    message: InboundMessage
    name: str = ""
    groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.message.to_dict(), "name": self.name, "groups": list(self.groups)}


class Pool:
    """A modem pool: its configuration and its spool. `Pool.open(path)` or `Pool(config)`."""

    def __init__(self, config: Config, *, spool: Spool | None = None) -> None:
        self.config = config
        self._spool = spool
        self._create = True
        self.campaign_desk = PoolCampaigns(self)

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

    # ---- sending -------------------------------------------------------------------------

    def send(self, to: str | Sequence[str], text: str, *, client_id: str | None = None,
             at: datetime | str | None = None, expires: datetime | str | None = None,
             priority: int = 0, sims: Iterable[str] = (),
             to_opted_out: bool = False) -> list[Message]:
        """Queue `text` to one number or several; returns the queued messages in order.

        `client_id` is an idempotency key: the same key again returns the first message and
        sends nothing new; with several numbers each gets `client_id:1`, `client_id:2`, ...
        `at` / `expires` take a datetime or what a person types (`18:30`, `+10m`,
        `2026-12-01 09:00`, read in `[pool] timezone`). `sims` binds the messages to those SIMs.
        Refused (blacklist, opt-out), an invalid number, an unknown SIM: a PoolError, and
        nothing is queued. `to_opted_out` sends to opted-out numbers anyway; never to
        blacklisted ones.
        """
        return self.spool.get_many(self.queue(
            to, text, client_id=client_id, at=at, expires=expires, priority=priority, sims=sims,
            to_opted_out=to_opted_out))

    def queue(self, to: str | Sequence[str], text: str, *, client_id: str | None = None,
              at: datetime | str | None = None, expires: datetime | str | None = None,
              priority: int = 0, sims: Iterable[str] = (),
              to_opted_out: bool = False) -> list[int]:
        """`send`, returning only the ids (a 100,000-recipient batch does not read its
        messages back)."""
        numbers = [to] if isinstance(to, str) else list(to)
        if not numbers:
            raise InvalidNumber("no recipient: give at least one number", code="no_recipient")
        return self.queue_many(
            [{"to": number, "client_id": fan_out(client_id, index, len(numbers) > 1)}
             for index, number in enumerate(numbers)],
            text, at=at, expires=expires, priority=priority, sims=sims, to_opted_out=to_opted_out)

    def send_many(self, messages: Iterable[dict[str, Any]], text: str | None = None, *,
                  at: datetime | str | None = None, expires: datetime | str | None = None,
                  priority: int = 0, sims: Iterable[str] = (),
                  to_opted_out: bool = False) -> list[Message]:
        """Queue many messages in one transaction (see `queue_many`); returns them."""
        return self.spool.get_many(self.queue_many(
            messages, text, at=at, expires=expires, priority=priority, sims=sims,
            to_opted_out=to_opted_out))

    def queue_many(self, messages: Iterable[dict[str, Any]], text: str | None = None, *,
                   at: datetime | str | None = None, expires: datetime | str | None = None,
                   priority: int = 0, sims: Iterable[str] = (),
                   to_opted_out: bool = False) -> list[int]:
        """Queue many messages in one transaction and return their ids: each a dict with `to`
        and optionally `text`, `client_id`, `priority`, `at`, `expires`, `sims` (the keyword
        arguments are the defaults). All are checked first; one refusal queues none."""
        tz = self.config.tz
        rows = []
        for item in messages:
            bound = list(item.get("sims") or sims)
            self.config.check_sims(bound)
            not_before = parse_when(item.get("at", at), tz)
            expires_at = parse_when(item.get("expires", expires), tz)
            check_window(not_before, expires_at)
            rows.append({
                "to": item["to"], "text": item.get("text", text),
                "client_id": item.get("client_id"),
                "priority": item.get("priority", priority),
                "not_before": not_before,
                "expires_at": expires_at,
                "sims": bound or None,
            })
        e164s = self._allowed_recipients([row["to"] for row in rows], to_opted_out=to_opted_out)
        for row, e164 in zip(rows, e164s):
            row["to"] = e164
        return self.spool.enqueue_many(rows, normalised=True)

    def queue_chunks(self, chunks: Iterable[Sequence[str]], text: str, *,
                     client_id: str | None = None, at: datetime | str | None = None,
                     expires: datetime | str | None = None, priority: int = 0,
                     sims: Iterable[str] = (), to_opted_out: bool = False,
                     on_write: Callable[[Any, list[int]], None] | None = None) -> QueuedIds:
        """`queue` for a batch too big to hold as Python objects (100,000 numbers): the numbers
        come in chunks (`chunks`, each a sequence of numbers, read one at a time), each
        normalised, checked and written before the next is read, all in one transaction. The
        rules, keys and refusals are `queue`'s, but that a refusal names only the first bad
        number, by its row (`RowError`, from 1): nothing is queued. Returns the ids packed
        (`QueuedIds`); `on_write(conn, ids)`, in the transaction, is given each chunk's
        messages that are new (not found again by their `client_id`)."""
        return queue_chunks(self, chunks, text, client_id=client_id, at=at, expires=expires,
                            priority=priority, sims=sims, to_opted_out=to_opted_out,
                            on_write=on_write)

    def check_recipients(self, numbers: Iterable[str], *, to_opted_out: bool = False) -> None:
        """Raise `Refused` (one number) or `RefusedMany` if any of `numbers` may not get a
        direct message; InvalidNumber for one that is no phone number."""
        self._allowed_recipients(numbers, to_opted_out=to_opted_out)

    def refusals(self, e164s: Sequence[str], *, to_opted_out: bool = False) -> list[Refused]:
        """Why each of these E.164 numbers may not get a direct message (blacklisted, or
        opted out with `[optout] block_direct`), each number once, in the order given."""
        block_opted_out = self.config.optout.block_direct and not to_opted_out
        blacklisted, opted_out = self.optouts.listed(e164s)
        refusals: list[Refused] = []
        for e164 in dict.fromkeys(e164s):
            if e164 in blacklisted:
                refusals.append(Blacklisted(e164, "number is on the blacklist"))
            elif block_opted_out and e164 in opted_out:
                refusals.append(OptedOut(e164, "number has opted out and [optout] block_direct is set"))
        return refusals

    def _allowed_recipients(self, numbers: Iterable[str], *, to_opted_out: bool = False) -> list[str]:
        """`check_recipients`, returning the numbers in E.164."""
        from modempool.spool.numbers import normalise_all

        e164s = normalise_all(numbers, self.config.region)
        refusals = self.refusals(e164s, to_opted_out=to_opted_out)
        if len(refusals) == 1:
            raise refusals[0]
        if refusals:
            raise RefusedMany(refusals)
        return e164s

    def wait(self, ids: Iterable[int], timeout: float | None = None) -> WaitResult:
        """Until every message is final (sent, delivered, failed, expired, cancelled or
        ambiguous), or `timeout` seconds have passed (then `timed_out` is set)."""
        ids = list(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            messages = tuple(self.spool.get(i) for i in ids)
            if all(m.final for m in messages):
                return WaitResult(messages)
            if deadline is not None and time.monotonic() >= deadline:
                return WaitResult(messages, timed_out=True)
            pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(pause)   # the daemon is another process: the spool file is all we share
            delay = min(delay * 1.5, 1.0)

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

    # ---- what came in, and how the pool is ------------------------------------------------

    def inbox(self, *, since: datetime | str | None = None, sender: str | None = None,
              limit: int | None = None, unread: bool = False) -> list[Received]:
        """Received messages oldest first (the last `limit`), each with its sender's contact
        name and groups. `since` also takes '-2h' and 'HH:MM' (the last such time)."""
        moment = parse_when(since, self.config.tz, past=True)
        return self.with_contacts(self.spool.inbound.messages(
            since=moment, sender=sender, limit=limit, unread=unread))

    def with_contacts(self, messages: Iterable[InboundMessage]) -> list[Received]:
        """Each received message with its sender's contact name and groups (the address book
        is asked once per number)."""
        book, known = self.contacts, {}
        out = []
        for message in messages:
            if message.sender not in known:
                known[message.sender] = book.find(message.sender) if message.sender else None
            contact = known[message.sender]
            out.append(Received(message, contact.name if contact else "",
                                tuple(contact.groups) if contact else ()))
        return out

    def status(self) -> Status:
        """Whether the daemon runs, every configured or seen SIM (with no daemon running, a
        SIM's state is unknown), the queue, the campaigns running or paused, and how many
        received SMS have hooks still to run (the oldest's age)."""
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

    def add_optouts(self, numbers: Iterable[str], *, source: str = "manual") -> int:
        """Opt numbers out (退订), all or none: one that is no phone number is an InvalidNumber
        naming it, and opts none out. Returns how many were not opted out before."""
        return self.optouts.add_many(numbers, source=source)

    def optout_list(self) -> list[OptOut]:
        """Every opted-out number, oldest first."""
        return self.optouts.opted_out()

    def remove_optout(self, number: str) -> None:
        """Opt a number back in (with the person's consent); NotFound if it is not opted out."""
        self.optouts.remove(number)

    def blacklist(self) -> list[BlacklistEntry]:
        """Every blacklisted number with why, by number."""
        return self.optouts.blacklisted()

    def add_to_blacklist(self, numbers: Iterable[str], reason: str = "") -> int:
        """Blacklist numbers, all or none (one that is no phone number blacklists none);
        returns how many were not on it before."""
        return self.optouts.add_to_blacklist(list(numbers), reason)

    def remove_from_blacklist(self, number: str) -> None:
        """Take a number off the blacklist; NotFound if it is not on it."""
        self.optouts.remove_from_blacklist(number)

    def import_blacklist(self, path: str | Path, *, reason: str = "imported",
                         skip_rejected: bool = False) -> ImportReport:
        """Blacklist every number of a CSV, XLSX or TXT file, all or nothing (ImportRejected
        lists every bad row) unless `skip_rejected`."""
        return self.optouts.import_blacklist(path, reason=reason, skip_rejected=skip_rejected)

    def export_optouts(self, path: str | Path, *, blacklist: bool = False) -> int:
        """Write the opt-outs (or the blacklist) to CSV or XLSX; returns the rows written."""
        return self.optouts.export(path, "blacklist" if blacklist else "optouts")

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

    def autoreply_rules(self) -> list[Rule]:
        """Every auto-reply rule in the order they are tried: the config's, then the stored."""
        from modempool.operator.autoreply import rules_from_config

        return rules_from_config(self.config) + self.autoreplies.rules()

    def autoreply_log(self, limit: int = 50) -> list[AutoReplyEntry]:
        """What the auto-reply answered and what its cooldown held back, newest first."""
        return self.autoreplies.log(limit)

    def run_due_jobs(self, now: datetime | None = None) -> list[JobRun]:
        """Queue what recurring jobs are due now (the daemon does it every minute)."""
        from modempool.operator.recurring import run_due_jobs

        return run_due_jobs(self.spool, self.config, now)

    def history(self, query: Query) -> list[HistoryEntry]:
        """Sent and received messages matching `query`, newest first, with contact names;
        its `since` / `until` may be what a person typed (read in `[pool] timezone`)."""
        from modempool.operator.history import search

        return search(self.spool, self._read_query(query), self.config.region)

    def export_history(self, query: Query, path: str | Path) -> int:
        """Write what `history(query)` finds to CSV or XLSX; returns the rows written."""
        from modempool.operator.history import export

        return export(self.spool, self._read_query(query), path, self.config.region)

    def _read_query(self, query: Query) -> Query:
        import dataclasses

        tz = self.config.tz
        return dataclasses.replace(query, since=parse_when(query.since, tz, past=True),
                                   until=parse_when(query.until, tz, past=True))

    def threads(self, *, unread: bool = False, limit: int = 100) -> list[Thread]:
        """Conversations by number, newest first, with names, groups and unread counts."""
        from modempool.operator.history import threads

        return threads(self.spool, unread_only=unread, limit=limit, region=self.config.region)

    # ---- the operator's work, as a person asks for it --------------------------------------
    # Values come as people type them: group expressions ("家长+教师-毕业班"), numbers separated
    # by commas, birthdays ("5月17日"), times ("2026-12-01 09:00", in `[pool] timezone`).

    def save_contact(self, number: str, name: str = "", *, fields: dict[str, Any] | None = None,
                     birthday: str | None = None, notes: str = "",
                     groups: Iterable[str] = ()) -> Contact:
        """Add or update one contact; `birthday` as typed (`1990-05-17`, `05-17`, `5月17日`)."""
        return self.contacts.upsert(number, name, fields=fields, birthday=birthday, notes=notes,
                                    groups=tuple(groups))

    def remove_contact(self, number: str) -> None:
        """Delete a contact (NotFound if `number` is not in the address book)."""
        self.contacts.remove(number)

    def groups(self) -> list[Group]:
        """Every group with its member count, by name."""
        return self.contacts.group_list()

    def create_group(self, name: str, description: str = "") -> int:
        """Create a group (an existing one stays as it is); returns its id."""
        return self.contacts.create_group(name, description)

    def rename_group(self, name: str, new_name: str) -> None:
        """Give a group another name; its members stay."""
        self.contacts.rename_group(name, new_name)

    def delete_group(self, name: str) -> None:
        """Delete a group; its contacts stay in the address book."""
        self.contacts.delete_group(name)

    def add_to_group(self, group: str, numbers: Iterable[str]) -> int:
        """Put contacts (by number) in a group, creating it; all or none: a number that is
        no contact adds nobody and leaves no new group. Returns how many."""
        return self.contacts.add_to_group(group, numbers)

    def remove_from_group(self, group: str, numbers: Iterable[str]) -> int:
        """Take contacts out of a group; returns how many were in it."""
        return self.contacts.remove_from_group(group, numbers)

    def import_contacts(self, path: str | Path, *, mapping: dict[str, str] | None = None,
                        groups: Iterable[str] = (), encoding: str | None = None,
                        sheet: str | None = None, skip_rejected: bool = False,
                        dry_run: bool = False) -> ImportReport:
        """Import a CSV, XLSX or TXT file into the address book, all or nothing (ImportRejected
        lists every bad row) unless `skip_rejected`; `dry_run` checks and stores nothing."""
        from modempool.operator.importers import import_contacts

        return import_contacts(self.contacts, path, mapping=mapping, groups=groups,
                               encoding=encoding, sheet=sheet, skip_rejected=skip_rejected,
                               dry_run=dry_run)

    def export_contacts(self, path: str | Path, *, group: str | None = None,
                        encoding: str = "utf-8-sig") -> int:
        """Write contacts (all, or one group's) to CSV or XLSX; returns how many."""
        from modempool.operator.importers import export_contacts

        return export_contacts(self.contacts, path, group=group, encoding=encoding)

    def select_contacts(self, groups: str | Iterable[str]) -> list[Contact]:
        """The contacts of group expressions such as "家长+教师-毕业班", each once."""
        from modempool.operator.contacts import parse_selections

        return self.contacts.select(parse_selections(groups))

    # ---- campaigns and their templates: the part `campaign_desk` (pool_campaigns.py) -------
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

    # ---- auto-replies, forwarding, recurring jobs, backup -----------------------------------

    def add_autoreply(self, reply: str, *, keywords: Iterable[str] = (),
                      pattern: str | None = None, sim: str | None = None,
                      hours: str | None = None, cooldown: int = 3600) -> Rule:
        """Store an auto-reply rule (tried after the config's): `keywords` or a `pattern`,
        only on `sim` (a configured one, else UnknownSim), only in `hours` (09:00-18:00)."""
        if sim is not None:
            self.config.check_sims([sim])
        return self.autoreplies.add(reply, keywords=tuple(keywords), pattern=pattern, sim=sim,
                                    hours=hours, cooldown=cooldown)

    def remove_autoreply(self, rule_id: int) -> None:
        """Delete a stored rule (`db:N`); the config's are changed in the config file."""
        self.autoreplies.remove(rule_id)

    def forward_targets(self) -> list[ForwardTarget]:
        """Every number received SMS are forwarded to: the config's, then those added here."""
        return self.forwarding.listed()

    def add_forward_target(self, number: str) -> str:
        """Forward each received SMS to `number` too (the daemon needs no restart); returns
        it in E.164. PoolError if it is a target already."""
        return self.forwarding.add(number)

    def remove_forward_target(self, number: str) -> str:
        """Stop forwarding to a number added here; NotFound for one that is not (or is the
        config's)."""
        return self.forwarding.remove(number)

    def add_job(self, name: str, kind: str, template: str, *, at: str = "09:00",
                weekday: str | None = None, numbers: Iterable[str] = (),
                groups: str | Iterable[str] = ()) -> Job:
        """Save a recurring job (birthday, daily, weekly) run by the daemon at `at`, local to
        `[pool] timezone`; `groups` as expressions like "员工-实习生"."""
        from modempool.operator.contacts import parse_selections

        return self.jobs.add(name, kind, template, at=at, weekday=weekday,
                             numbers=tuple(numbers), groups=parse_selections(groups))

    def remove_job(self, job_id: int) -> None:
        """Delete a recurring job (NotFound if there is none with this id)."""
        self.jobs.remove(job_id)

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
