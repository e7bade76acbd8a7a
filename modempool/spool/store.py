"""The durable spool: every message, its parts and leases, what came back, and the SIMs.

`Spool` holds its parts, each with the state it needs and its own tests:
- `spool.messages`: enqueue and read (`messages.py`); `spool.decisions`: cancel, retry, hold
  (`decisions.py`);
- `spool.claims`: leases, part markers, the send-side transitions, crash recovery
  (`claims.py`, `recovery.py`); `spool.records`: what is written when a modem accepts a part
  (`records.py`);
- `spool.inbound`: received SMS (`inbound.py`); `spool.delivery_reports`: delivery reports
  (`delivery_reports.py`);
- `spool.sims`: SIM rows and counters (`sims.py`); `spool.audit`: the events log (`audit.py`);
  `spool.daemons`: the daemons' heartbeats (`daemons.py`); `spool.card_holders`: which live
  daemon serves each SIM card (`card_holders.py`); `spool.metrics`: what a Prometheus
  scrape asks (`metrics.py`);
- `spool.history`: the history search's reads (`history.py`); `spool.reports`: the operator
  features' questions (`reports.py`); `spool.scoped`: what one API account sees (`scoped.py`).
They share one `engine` (`sqlite_engine.py` or `postgres_engine.py`, chosen by the target):
the parts hold the rules, the engine the SQL that differs. The methods of `Spool` itself are
the same calls under their long-standing names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any

from modempool.numbers import DEFAULT_REGION
from modempool.part_call import PartCall
from modempool.spool.audit import AuditLog
from modempool.spool.card_holders import CardHolders
from modempool.spool.claims import Claims
from modempool.spool.daemons import Daemons
from modempool.spool.decisions import Decisions
from modempool.spool.delivery_reports import DeliveryReports, ReportMatch
from modempool.spool.history import History
from modempool.spool.engine import Engine, SpoolTooNew, SpoolUnreachable, open_engine
from modempool.spool.inbound import InboundMessage, Inbound
from modempool.spool.inbound_hooks import InboundHooks
from modempool.spool.messages import Messages
from modempool.spool.metrics import Metrics
from modempool.spool.records import Records
from modempool.spool.reports import Reports
from modempool.spool.requests import Requests
from modempool.spool.scoped import Scoped
from modempool.spool.model import (
    FINAL_STATES,
    RETRYABLE_STATES,
    SUCCESS_STATES,
    LeaseLost,
    Message,
    MessageState,
    Recovery,
    StateConflict,
    from_text,
    to_text,
    utcnow,
)
from modempool.spool.sendable import DEFAULT_MAX_PARTS
from modempool.spool.pins import RefusedPins
from modempool.spool.sims import Sims


class Spool:
    """A spool: `Spool("modempool.db")` creates or opens an SQLite file,
    `Spool("postgresql://user@host/db")` a PostgreSQL database shared by several daemons.

    SQLite: one object per thread of use is simplest; an object may be shared between threads
    (calls are serialised by a lock). Several processes may open the same file: every write
    runs in a `BEGIN IMMEDIATE` transaction and waits up to `busy_timeout` seconds.
    `synchronous="normal"` (WAL) makes each commit survive a killed process; "full" also
    survives a power cut, at one disk flush per commit.

    Opening upgrades an older spool in place (one transaction) and refuses, with SpoolTooNew,
    a spool written by a newer modempool; an unreachable database raises SpoolUnreachable.
    An upgrade across a step that older daemons still running cannot survive is refused with
    OlderDaemonsRunning unless `despite_older_daemons` (`spool/upgrade_guard.py`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        region: str = DEFAULT_REGION,
        tz: tzinfo | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "normal",
        max_parts: int = DEFAULT_MAX_PARTS,
        create: bool = True,
        despite_older_daemons: bool = False,
    ) -> None:
        self.engine: Engine = open_engine(path, busy_timeout=busy_timeout,
                                          synchronous=synchronous, create=create,
                                          despite_older_daemons=despite_older_daemons)
        self.path = Path(path) if self.engine.name == "sqlite" else None
        self.url = None if self.engine.name == "sqlite" else str(path)
        self.region = region
        self.tz = tz  # local time zone for day/month counters; None = the system's
        self.audit = AuditLog(self.engine)
        self.messages = Messages(self.engine, region, max_parts)
        self.decisions = Decisions(self.engine, self.audit)
        self.sims = Sims(self.engine, self.audit, tz)
        self.claims = Claims(self.engine, self.sims, self.audit)
        self.records = Records(self.engine, self.sims, self.audit, self.claims)
        self.inbound = Inbound(self.engine, region)
        self.delivery_reports = DeliveryReports(self.engine, self.audit, region, self.sims)
        self.inbound_hooks = InboundHooks(self.engine)
        self.daemons = Daemons(self.engine)
        self.card_holders = CardHolders(self.engine, self.audit)
        self.requests = Requests(self.engine)
        self.refused_pins = RefusedPins(self.engine, self.audit)
        self.metrics = Metrics(self.engine)
        self.history = History(self.engine, self.messages)
        self.scoped = Scoped(self.engine)
        self.reports = Reports(self.engine)
        self._db: Any = None

    @property
    def where(self) -> str:
        """Where the spool is, for messages (a file, or user@host/db without a password)."""
        return self.engine.where

    @property
    def db(self) -> Any:
        """The spool's database for modules that keep their own tables in it (contacts,
        campaigns, opt-outs...): `execute(sql, params)` in SQLite's dialect, `transaction()`,
        `ensure_schema(script)`. It shares the engine's connection and its lock, so any thread
        may use it (`sqlite_operator.py`, `postgres_operator.py`)."""
        if self._db is None:
            self._db = self.engine.operator_db()
        return self._db

    def transaction(self) -> Any:
        """One write transaction (nests inside an open one): modules that keep their own tables
        in the spool's database (accounts, webhooks) write them in the same commit as a message."""
        return self.engine.tx()

    def check_writable(self) -> None:
        """Raise the database's error unless a write transaction can begin now (readiness:
        locked for longer than busy_timeout, read-only, disk or server gone)."""
        with self.engine.tx() as conn:
            conn.execute("SELECT 1 FROM messages LIMIT 1")

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """Rows of a read-only query on the spool's connection (by position and by name)."""
        return self.engine.rows(sql, params)

    def table_names(self) -> list[str]:
        return self.engine.table_names()

    def text_matches(self, table: str, text: str) -> tuple[str, list[Any]]:
        """SQL condition (and parameters) for rows of `messages` or `inbound` whose text
        contains `text`: the history search's, from the engine's full-text index if it has one."""
        return self.engine.text_matches(table, text)

    def newest_matching(self, table: str, text: str, limit: int,
                        before: int | None = None) -> list[int] | None:
        """Ids of the newest rows of `messages` or `inbound` (below id `before`) containing
        `text`, from the full-text index; None where the engine has none (use `text_matches`)."""
        return self.engine.newest_matching(table, text, limit, before)

    def checkpoint_when_told(self, *, backstop: int = 0) -> None:
        """Stop this connection's automatic WAL checkpoints (a commit that crosses the WAL
        threshold copies it into the database, a stall of milliseconds wherever it falls): the
        daemon calls `checkpoint()` itself, at moments when no modem waits for it. With
        `backstop` (pages) a commit still checkpoints once the WAL holds that many, which only
        happens when `checkpoint()` could not keep up (the API's server sets one)."""
        self.engine.checkpoint_when_told(backstop=backstop)

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file (SQLite); fold the kept counts
        (PostgreSQL, now and then). Call it off the event loop (`asyncio.to_thread`)."""
        self.engine.checkpoint()

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the parts' calls under their long-standing names ------------------------------------
    enqueue = PartCall("messages", "enqueue")
    enqueue_many = PartCall("messages", "enqueue_many")
    get = PartCall("messages", "get")
    get_by_client_id = PartCall("messages", "get_by_client_id")
    get_many = PartCall("messages", "get_many")
    list = PartCall("messages", "list")
    counts = PartCall("messages", "counts")
    queue_depth = PartCall("messages", "queue_depth")
    parts = PartCall("messages", "parts")
    last_sims_for = PartCall("messages", "last_sims_for")
    events = PartCall("audit", "__call__")
    record_event = PartCall("audit", "add")

    cancel = PartCall("decisions", "cancel")
    retry = PartCall("decisions", "retry")
    hold = PartCall("decisions", "hold")
    release = PartCall("decisions", "release")

    batch = PartCall("claims", "batch")
    expire_due = PartCall("claims", "expire_due")
    dispatchable = PartCall("claims", "dispatchable")
    due_count = PartCall("claims", "due_count")
    due_and_in_hand = PartCall("claims", "due_and_in_hand")
    claim = PartCall("claims", "claim")
    claim_many = PartCall("claims", "claim_many")
    renew_lease = PartCall("claims", "renew_lease")
    mark_part_writing = PartCall("claims", "mark_part_writing")
    sent_parts = PartCall("claims", "sent_parts")
    resume_refusal = PartCall("claims", "resume_refusal")
    mark_part_sent = PartCall("records", "mark_part_sent")
    mark_sent = PartCall("claims", "mark_sent")
    mark_last_part_sent = PartCall("records", "mark_last_part_sent")
    mark_many_sent = PartCall("records", "mark_many_sent")
    mark_sent_then_writing = PartCall("records", "mark_sent_then_writing")
    mark_sent_then_writing_each = PartCall("records", "mark_sent_then_writing_each")
    mark_failed = PartCall("claims", "mark_failed")
    fail_queued = PartCall("claims", "fail_queued")
    cancel_queued = PartCall("claims", "cancel_queued")
    mark_ambiguous = PartCall("claims", "mark_ambiguous")
    requeue = PartCall("claims", "requeue")
    recover_leases = PartCall("claims", "recover_leases")
    recover_dead_owners = PartCall("claims", "recover_dead_owners")

    store_inbound = PartCall("inbound", "store")
    store_inbound_part = PartCall("inbound", "store_part")
    flush_inbound_parts = PartCall("inbound", "flush_parts")
    pending_inbound_parts = PartCall("inbound", "pending_parts")
    mark_read = PartCall("inbound", "mark_read")
    store_delivery_report = PartCall("delivery_reports", "store")

    count_sent = PartCall("sims", "count_sent")
    sent_counts = PartCall("sims", "sent_counts")
    sent_counts_of = PartCall("sims", "sent_counts_of")
    upsert_sim = PartCall("sims", "upsert")
    name_sim_card = PartCall("sims", "name_card")
    record_sim_error = PartCall("sims", "record_error")
    sim = PartCall("sims", "get")
    sims_up = PartCall("sims", "up_count")

    beat = PartCall("daemons", "beat")
    daemon_stopped = PartCall("daemons", "stopped")

    refused_pin = PartCall("refused_pins", "find")
    record_refused_pin = PartCall("refused_pins", "record")
    forget_refused_pin = PartCall("refused_pins", "forget")
    pin_refusal_of = PartCall("refused_pins", "of_sim")
