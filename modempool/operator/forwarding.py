"""Forwarding received SMS: to phone numbers, and to a command (`run_on_receive`, as smsd/gammu do).

```toml
[forward]
to = ["+8613900139000"]              # forward each received SMS to these numbers
format = "[{name}{sender}] {text}"    # fields: sender, name, text, sim, received_at
command = "/usr/local/bin/on-sms --db sms"   # run for each received SMS (alias: run_on_receive)
timeout = 10                          # seconds before the command is killed
retries = 3                           # further attempts after a failure
retry_delay = 5                       # seconds, doubled after each failure
pass_env = ["HTTPS_PROXY"]            # what else of the daemon's environment it gets
```
The command gets the message as JSON on stdin (`{"id", "sender", "sim", "text", "received_at",
"name", "groups"}`) and gammu-style variables (`SMS_MESSAGES=1`, `SMS_1_NUMBER`, `SMS_1_TEXT`,
`MODEMPOOL_SIM`, `MODEMPOOL_INBOUND_ID`), and of the daemon's environment only what a program
needs to run and `pass_env` (one run: `forward_command.py`). It runs as an asyncio subprocess in the background, so
a slow or hanging command never blocks the pool; failures are logged, retried, and every
attempt is recorded in `forward_log`.

In the daemon the command is the last of the SMS's hooks (`command_step`): its mark in the
spool (`spool/inbound_hooks.py`) stays until the command's final outcome (exit status 0, or
the retries used up) is recorded, in the same transaction. A stop or kill before that leaves
it pending, and the next start (on a shared database: the daemon that takes over a dead one's
hooks) runs it again, its attempts counted on from those `forward_log` holds for the SMS: the
retries bound its attempts across restarts (all of them failed already: it gives up at once).
So each SMS's command runs at least once to a final outcome; a run cut short by a kill may have done its work, in full or in part, and the same SMS
can reach the command twice: the command dedupes by `MODEMPOOL_INBOUND_ID` (the JSON's `id`),
the SMS's id in the spool. A handler made for use outside the daemon (`make_forward_handler`,
`command=True`) starts the command itself, with no mark: retries cut short by a stop are
resumed when the next message arrives after the restart. The daemon's handler (`command=False`)
resumes none: with no mark, every daemon of a shared spool would run the same leftover at its
first SMS. So a command cut short before schema 15 (no mark), or whose step was passed after a
bug, stays with its last attempt `failed` in `forward_log` (the spool's unfinished forwards):
`modempool status` counts them, `modempool forward leftovers` lists them, runs them again
(`forward_retry.py`) and gives them up (`forward_leftovers.py`).

Numbers to forward to can also be added and removed while the daemon runs (the console,
`pool.forwarding`): they are kept in `forward_targets` and read for each message, after the
config's `to`. The command and the format stay in the config file, which only the box's owner
edits: a web page must not be able to choose a program the daemon runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from modempool.config import Config, ForwardConfig
from modempool.errors import NotFound, PoolError, SpoolFailure
from modempool.numbers import normalise
from modempool.operator.db import ensure_schema, now_iso, transaction
from modempool.operator.forward_command import run_command
from modempool.operator.optout import field_of
from modempool.spool.unavailable import database_failed, log_failure

log = logging.getLogger("modempool.operator.forwarding")

#: Each forward's attempts. Its second index holds the command's failed attempts and the
#: operator's retry claims alone, what the leftovers look reads (`Reports.commands_cut_short`,
#: paid by every CLI `status`): made, as this table and its first index were, by the first
#: process that ensures this schema (the daemon at its next SMS, `forward leftovers --retry`
#: or `--give-up`), no schema step; a spool without it yet answers the same by a scan.
SCHEMA = """
CREATE TABLE IF NOT EXISTS forward_log (
    id INTEGER PRIMARY KEY,
    inbound_id INTEGER,
    target TEXT NOT NULL,           -- a number, or the command's digest (command_target)
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,          -- queued | ok | failed | gave-up | retrying
    detail TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS forward_log_of_inbound ON forward_log (inbound_id);
CREATE INDEX IF NOT EXISTS forward_log_command_unfinished ON forward_log (inbound_id)
    WHERE outcome IN ('failed', 'retrying') AND target NOT LIKE '+%'
"""

TARGETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS forward_targets (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,    -- E.164
    created_at TEXT NOT NULL
);
"""

_background: set[asyncio.Task] = set()


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """A number received SMS are forwarded to, and where it is kept: `config` (`[forward] to`,
    changed in the config file) or `spool` (added with `Pool.add_forward_target`)."""

    number: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "from": self.source}


class ForwardTargets:
    """The numbers received SMS are forwarded to: the config's `[forward] to` (fixed) and those
    stored in the spool (added and removed here)."""

    def __init__(self, db: Any, region: str, configured: tuple[str, ...] = ()) -> None:
        self.db = db
        self.region = region
        self.configured = tuple(configured)
        ensure_schema(db, TARGETS_SCHEMA)

    def stored(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT number FROM forward_targets ORDER BY id").fetchall()]

    def all(self) -> list[str]:
        """Every target once: the config's first, then the stored ones."""
        return list(dict.fromkeys([*self.configured, *self.stored()]))

    def listed(self) -> list[ForwardTarget]:
        """Every target once, the config's first, each with where it is kept."""
        stored = [ForwardTarget(n, "spool") for n in self.stored() if n not in self.configured]
        return [ForwardTarget(n, "config") for n in self.configured] + stored

    def add(self, number: str) -> str:
        """Forward from now on to `number` too; returns it in E.164."""
        e164 = normalise(number, self.region)
        with transaction(self.db):
            if e164 in self.all():
                raise PoolError(f"{e164} is already a forwarding target", code="forward_exists",
                                params={"number": e164})
            self.db.execute("INSERT INTO forward_targets (number, created_at) VALUES (?, ?)",
                            [e164, now_iso()])
        return e164

    def remove(self, number: str) -> str:
        """Stop forwarding to a stored target (the config's are changed in the config file)."""
        e164 = normalise(number, self.region)
        with transaction(self.db):
            if self.db.execute("DELETE FROM forward_targets WHERE number = ?",
                               [e164]).rowcount == 0:
                raise NotFound(f"{e164} is not a forwarding target"
                               + (" of the console (it is in the config file)"
                                  if e164 in self.configured else ""),
                               code="forward_not_found", params={"number": e164})
        return e164


def message_json(spool: Any, message: Any) -> dict[str, Any]:
    """The JSON a command receives: the inbound row plus the contact's name and groups."""
    from modempool.operator.contacts import AddressBook

    sender = str(field_of(message, "sender", ""))
    contact = AddressBook(spool.db).find(sender) if sender else None
    received = field_of(message, "received_at")
    return {
        "id": field_of(message, "id"), "sender": sender, "sim": field_of(message, "sim"),
        "text": field_of(message, "text", ""),
        "received_at": received.isoformat() if hasattr(received, "isoformat") else received,
        "name": contact.name if contact else "", "groups": list(contact.groups) if contact else [],
    }


#: Called in the transaction that records a command's final outcome: passes the SMS's step
#: (False: it was not this run's any more).
Passed = Callable[[], bool]


def record_attempt(spool: Any, inbound_id: Any, target: str, attempt: int, outcome: str,
                   detail: str = "", passed: Passed | None = None) -> None:
    """An attempt's outcome in `forward_log`; a final one only with its step passed, in one
    transaction. The step passed already (this record's first commit done though its answer
    was lost, or the step taken over by another daemon run, which records its own): no
    second final row."""
    with transaction(spool.db):
        if passed is not None and not passed():
            log.info("run_on_receive for inbound %s: its step was passed already (an earlier "
                     "record whose answer was lost, or another daemon run's): not recorded "
                     "again", inbound_id)
            return
        spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, detail,"
                         " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                         [inbound_id, target, attempt, outcome, detail, now_iso()])


async def _at_once(work: Callable[..., Any], *args: Any) -> Any:
    """Spool work run where it is called (no daemon lane given: tests, a one-off handler)."""
    return work(*args)


def command_target(command: str) -> str:
    """What `forward_log.target` holds for the command: a digest, never the command line,
    which may carry a secret (`curl -u user:password ...`) that every reader of the spool
    would see. Rows of older versions hold the line itself; reads look for both."""
    return "command sha256:" + hashlib.sha256(command.encode()).hexdigest()[:16]


def _command_targets(command: str) -> tuple[str, str]:
    """The targets a command's rows may have: its digest, and the line older versions wrote."""
    return command_target(command), command


def _attempts_made(spool: Any, inbound_id: Any, command: str) -> int:
    """The failed attempts `forward_log` holds for `command` on SMS `inbound_id`: those of the
    runs a stop or kill cut short (a failure recorded twice, its answer lost the first time,
    counts once)."""
    made = spool.db.execute("SELECT max(attempt) FROM forward_log WHERE inbound_id = ? "
                            "AND target IN (?, ?) AND outcome = 'failed'",
                            [inbound_id, *_command_targets(command)])
    return int(made.fetchone()[0] or 0)


async def _until_done(run: Callable[..., Awaitable[Any]], what: str, work: Callable[..., Any],
                      *args: Any) -> Any:
    """Spool `work` run through `run`; while the database cannot answer, tried again every few
    seconds (the daemon's stop cancels the wait: the next run resumes the command)."""
    delay = 1.0
    while True:
        try:
            return await run(work, *args)
        except Exception as exc:
            if not database_failed(exc):
                raise
            log_failure(log, f"could not {what}; trying again", exc)
        await asyncio.sleep(delay)   # a backoff, not a synchronisation
        delay = min(delay * 2, 5.0)


async def _recorded(run: Callable[..., Awaitable[Any]], spool: Any, inbound_id: Any,
                    target: str, attempt: int, outcome: str, detail: str = "",
                    passed: Passed | None = None) -> None:
    """An attempt's outcome recorded (`_until_done`)."""
    await _until_done(run, "record a run_on_receive outcome", record_attempt, spool, inbound_id,
                      target, attempt, outcome, detail, passed)


async def _command_with_retries(run: Callable[..., Awaitable[Any]], spool: Any,
                                settings: ForwardConfig, payload: dict[str, Any],
                                limit: asyncio.Semaphore, passed: Passed | None = None) -> bool:
    """The command until it exits 0 or its retries are used up, counted on from the attempts
    an earlier run recorded for this SMS (its first attempt here at once, the later ones after
    the doubling delay); each attempt recorded, the final outcome together with `passed`."""
    command = settings.command or ""
    made = await _until_done(run, "read the run_on_receive attempts made", _attempts_made,
                             spool, payload["id"], command)
    target = command_target(command)
    delay = settings.retry_delay * 2 ** made
    for attempt in range(made + 1, settings.retries + 2):
        async with limit:
            try:
                ok, detail = await run_command(settings.command or "", payload, settings.timeout,
                                               settings.pass_env)
            except Exception as exc:  # whatever happens, the attempt ends in a recorded outcome
                log.exception("run_on_receive for inbound %s", payload["id"])
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        await _recorded(run, spool, payload["id"], target, attempt,
                        "ok" if ok else "failed", detail, passed=passed if ok else None)
        if ok:
            return True
        log.warning("run_on_receive for inbound %s failed (attempt %d): %s", payload["id"],
                    attempt, detail)
        if attempt <= settings.retries:
            await asyncio.sleep(delay)
            delay *= 2
    await _recorded(run, spool, payload["id"], target, max(made, settings.retries + 1),
                    "gave-up", passed=passed)
    log.error("run_on_receive for inbound %s gave up after %d attempts", payload["id"],
              settings.retries + 1)
    return False


def make_forward_handler(config: Config,
                         run_spool_work: Callable[..., Awaitable[Any]] | None = None, *,
                         command: bool = True):
    """The inbound handler: queue forwards to numbers, and return an awaitable that starts the
    command in the background (the handler runs in the daemon's inbound lane, where the
    spool's calls belong; the awaitable on its event loop, where tasks start).
    `run_spool_work(work, *args)`: how the command's outcomes are recorded from the loop (the
    daemon's inbound lane: its threads on a database server, drained at shutdown).
    `command` False: the command is neither started nor resumed here (the daemon runs it as
    the SMS's last step: `command_step`)."""
    settings = config.forward
    run = run_spool_work or _at_once
    resumed: dict[str, object] = {}   # set once a message has read the unfinished to resume
    limit: list[asyncio.Semaphore] = []

    def handle_forward(spool: Any, message: Any,
                       _config: Any = None) -> Awaitable[list[asyncio.Task]]:
        targets = ForwardTargets(spool.db, config.region, settings.to).all()
        if not targets and not settings.command:
            return _start(spool, [])
        ensure_schema(spool.db, SCHEMA)
        payload = message_json(spool, message)
        for target in targets:
            if _same_number(payload["sender"], target, config.region):
                continue  # never forward the forward target's own messages back to it
            name = f"{payload['name']} " if payload["name"] else ""
            text = settings.format.format(sender=payload["sender"], name=name, text=payload["text"],
                                          sim=payload["sim"] or "", received_at=payload["received_at"])
            client_id = f"forward:{payload['id']}:{target}" if payload["id"] is not None else None
            try:
                queued = spool.enqueue(target, text, client_id=client_id)
            except SpoolFailure:
                raise   # the database's, not the rules': no forward refused, the daemon logs it
            except PoolError as exc:  # e.g. too long once the sender's name is added
                log.warning("forward of inbound %s to %s refused: %s", payload["id"], target, exc)
                record_attempt(spool, payload["id"], target, 1, "failed", str(exc))
                continue
            record_attempt(spool, payload["id"], target, 1, "queued", f"message {queued.id}")
        if not settings.command or not command:
            # the daemon's handler: the command is the SMS's durable step (`command_step`),
            # which alone runs it; a resume here would run a leftover in every daemon of a
            # shared spool at once, with no mark
            return _start(spool, [])
        payloads = [payload]
        mine = object()  # one check-and-set, also with two lane threads at once
        if resumed.setdefault("first", mine) is mine:
            # first message in this process: finish what a crash interrupted
            try:
                payloads += [message_json(spool, row)
                             for row in _unfinished(spool, settings.command)
                             if row["id"] != payload["id"]]
            except SpoolFailure as exc:
                del resumed["first"]   # not read: the next message tries again
                log_failure(log, "could not read the run_on_receive commands a stop cut short; "
                            "the next message tries again", exc)
        return _start(spool, payloads)

    async def _start(spool: Any, payloads: list[dict[str, Any]]) -> list[asyncio.Task]:
        """On the event loop: the command for each of `payloads`, in the background."""
        if payloads and not limit:
            limit.append(asyncio.Semaphore(settings.max_parallel))
        return [in_background(_command_with_retries(run, spool, settings, item, limit[0]),
                              f"run_on_receive-{item['id']}") for item in payloads]

    return handle_forward


def command_step(config: Config, run_spool_work: Callable[..., Awaitable[Any]]
                 ) -> Callable[[Any, Any, Passed], Awaitable[bool]] | None:
    """The forward command as the last step of a stored SMS's hooks (see the module), None
    when none is configured: `step(spool, message, passed)` runs it, with its retries, until
    its final outcome, recorded in one transaction with `passed()` (which clears the SMS's
    mark); True when it exited 0. Its spool work runs through `run_spool_work`."""
    settings = config.forward
    if not settings.command:
        return None
    limit: list[asyncio.Semaphore] = []

    async def step(spool: Any, message: Any, passed: Passed) -> bool:
        if not limit:
            limit.append(asyncio.Semaphore(settings.max_parallel))
        payload = await run_spool_work(message_json, spool, message)
        return await _command_with_retries(run_spool_work, spool, settings, payload, limit[0],
                                           passed)

    return step


def in_background(work: Awaitable[Any], name: str) -> asyncio.Task:
    """A task among those `drain` waits for at the daemon's stop."""
    task = asyncio.ensure_future(work)
    task.set_name(name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _unfinished(spool: Any, command: str) -> list[dict[str, Any]]:
    """Inbound messages whose last command attempt failed and was neither retried to success nor
    given up (the daemon stopped in between), but for those pending in `inbound_hooks` (their
    command is the daemon's step, run again from there)."""
    pending = {row["inbound_id"] for row in spool.inbound_hooks.waiting()}
    return [row for row in spool.reports.received_whose_last("forward_log", _command_targets(command),
                                                          ("failed",))
            if row["id"] not in pending]


def _same_number(sender: str, target: str, region: str) -> bool:
    try:
        return normalise(sender, region) == target
    except PoolError:
        return False


async def drain(timeout: float | None = None) -> None:
    """Wait for running forward commands (for a clean daemon shutdown); cancel them on timeout."""
    tasks = list(_background)
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
