"""Opt-outs (退订) and the blacklist.

An inbound reply whose whole text is an unsubscribe keyword (`TD`, `T`, `退订`, `N`, `STOP`,
`UNSUBSCRIBE` by default; compared after NFKC, so `ＴＤ` and `td` match) puts the sender on the
`optouts` list, and may be answered with a confirmation. Opted-out numbers never receive campaign or
recurring messages; direct sends are allowed unless `[optout] block_direct = true` (that rule is
`Pool.check_recipients`). Numbers on the
`blacklist` receive nothing at all.

```toml
[optout]
keywords = ["TD", "T", "退订", "N", "STOP", "UNSUBSCRIBE"]
confirm = true
confirm_text = "您已成功退订，将不再收到此类短信。"
block_direct = false
```
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modempool.config import Config
from modempool.errors import InvalidNumber, NotFound
from modempool.numbers import DEFAULT_REGION, normalise
from modempool.operator.db import ensure_schema, locked, now_iso, parse_time, transaction
from modempool.spool.numbers import normalise_all
from modempool.spool.plain_text import refuse_nul

log = logging.getLogger("modempool.operator.optout")


SCHEMA = """
CREATE TABLE IF NOT EXISTS optouts (
    number TEXT PRIMARY KEY,
    keyword TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    inbound_id INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blacklist (
    number TEXT PRIMARY KEY,
    reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OptOut:
    """A number that opted out (退订): the keyword it replied with ('' when added by hand),
    where the opt-out came from (`auto`, `manual`, `api`, ...), the SMS that said so."""

    number: str
    keyword: str
    source: str
    inbound_id: int | None
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "keyword": self.keyword, "source": self.source,
                "inbound_id": self.inbound_id,
                "created_at": now_iso(self.created_at) if self.created_at else None}


@dataclass(frozen=True, slots=True)
class BlacklistEntry:
    """A number that never gets any message, and why."""

    number: str
    reason: str
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "reason": self.reason,
                "created_at": now_iso(self.created_at) if self.created_at else None}


class OptOutList:
    """The `optouts` and `blacklist` tables."""

    def __init__(self, db: Any, region: str = DEFAULT_REGION) -> None:
        self.db = db
        self.region = region
        ensure_schema(db, SCHEMA)

    def add(self, number: str, *, keyword: str = "", source: str = "manual",
            inbound_id: int | None = None) -> bool:
        """Opt a number out; True if it was not opted out before."""
        refuse_nul("the opt-out's keyword", keyword)
        refuse_nul("the opt-out's source", source)
        e164 = normalise(number, self.region)
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT OR IGNORE INTO optouts (number, keyword, source, inbound_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)", [e164, keyword, source, inbound_id, now_iso()])
        return cur.rowcount == 1

    def add_many(self, numbers: Iterable[str], *, keyword: str = "",
                 source: str = "manual") -> int:
        """Opt many numbers out in one transaction; returns how many were not opted out
        before. All are checked first: one that is no phone number (InvalidNumber naming its
        row) opts none out."""
        refuse_nul("the opt-out's keyword", keyword)
        refuse_nul("the opt-out's source", source)
        e164s = normalise_all(numbers, self.region)
        added, at = 0, now_iso()
        with transaction(self.db):
            for e164 in dict.fromkeys(e164s):
                added += self.db.execute(
                    "INSERT OR IGNORE INTO optouts (number, keyword, source, inbound_id, created_at)"
                    " VALUES (?, ?, ?, NULL, ?)", [e164, keyword, source, at]).rowcount
        return added

    def remove(self, number: str) -> None:
        e164 = normalise(number, self.region)
        with transaction(self.db):
            if self.db.execute("DELETE FROM optouts WHERE number = ?", [e164]).rowcount == 0:
                raise NotFound(f"{e164} is not opted out")

    def is_opted_out(self, number: str) -> bool:
        return self._has("optouts", number)

    def is_blacklisted(self, number: str) -> bool:
        return self._has("blacklist", number)

    def _has(self, table: str, number: str) -> bool:
        try:
            e164 = normalise(number, self.region)
        except InvalidNumber:
            return False
        return self.db.execute(f"SELECT 1 FROM {table} WHERE number = ?", [e164]).fetchone() is not None

    def listed(self, e164s: Iterable[str]) -> tuple[set[str], set[str]]:
        """Which of these E.164 numbers are on the blacklist, and which opted out (a batch of
        100,000 costs a few hundred queries, not 200,000)."""
        blacklisted, opted_out = listed_since(self.db, e164s)
        return set(blacklisted), set(opted_out)

    def optouts(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT number, keyword, source, inbound_id, created_at FROM optouts"
                              " ORDER BY created_at, number")
        return [dict(zip(("number", "keyword", "source", "inbound_id", "created_at"), r))
                for r in cur.fetchall()]

    def blacklist(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT number, reason, created_at FROM blacklist ORDER BY number")
        return [dict(zip(("number", "reason", "created_at"), r)) for r in cur.fetchall()]

    def opted_out(self) -> list[OptOut]:
        """`optouts()` as typed entries, oldest first."""
        return [OptOut(r["number"], r["keyword"], r["source"], r["inbound_id"],
                       parse_time(r["created_at"])) for r in self.optouts()]

    def blacklisted(self) -> list[BlacklistEntry]:
        """`blacklist()` as typed entries, by number."""
        return [BlacklistEntry(r["number"], r["reason"], parse_time(r["created_at"]))
                for r in self.blacklist()]

    def blocked_for_campaigns(self) -> set[str]:
        """Numbers a campaign or recurring job must skip: opted out or blacklisted."""
        cur = self.db.execute("SELECT number FROM optouts UNION SELECT number FROM blacklist")
        return {r[0] for r in cur.fetchall()}

    def add_to_blacklist(self, numbers: Iterable[str], reason: str = "") -> int:
        """Blacklist many numbers in one transaction; one that is no phone number
        (InvalidNumber naming its row) blacklists none."""
        refuse_nul("the blacklist reason", reason)
        e164s = normalise_all(numbers, self.region)
        with transaction(self.db):
            for e164 in e164s:
                self.db.execute("INSERT OR REPLACE INTO blacklist (number, reason, created_at)"
                                " VALUES (?, ?, ?)", [e164, reason, now_iso()])
        return len(e164s)

    def remove_from_blacklist(self, number: str) -> None:
        e164 = normalise(number, self.region)
        with transaction(self.db):
            if self.db.execute("DELETE FROM blacklist WHERE number = ?", [e164]).rowcount == 0:
                raise NotFound(f"{e164} is not on the blacklist")

    def import_blacklist(self, path: str | Path, *, reason: str = "imported",
                         mapping: dict[str, str] | None = None, skip_rejected: bool = False):
        """Add every number of a CSV/XLSX/TXT file, all-or-nothing like contact import."""
        from modempool.operator.importers import ImportRejected, ImportReport, check_rows, read_table

        report = check_rows(read_table(path), mapping, region=self.region, path=str(path))
        if report.rejected and not skip_rejected:
            raise ImportRejected(report)
        count = self.add_to_blacklist([r.number for r in report.accepted], reason)
        return ImportReport(report.path, report.format, report.encoding, report.accepted,
                            report.rejected, imported=count)

    def export(self, path: str | Path, which: str = "blacklist") -> int:
        from modempool.operator.spreadsheets import write_table

        rows = self.blacklist() if which == "blacklist" else self.optouts()
        headers = list(rows[0]) if rows else (["number", "reason", "created_at"]
                                              if which == "blacklist" else ["number", "keyword"])
        return write_table(path, headers, ([r[h] for h in headers] for r in rows))


#: Numbers asked in one query: far below any engine's limit on parameters (SQLite's can be
#: 999 or 32,766, PostgreSQL's 65,535).
LOOKUP_CHUNK = 500


def listed_since(db: Any, e164s: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Which of these E.164 numbers are on the blacklist, and which opted out, each with
    since when (`created_at`): one query (both lists) per LOOKUP_CHUNK numbers. What enqueue's
    checks (`OptOutList.listed`) and the claim-time rule (`SendTimeCheck`) both ask."""
    numbers = list(dict.fromkeys(e164s))
    found: dict[str, dict[str, str]] = {"blacklist": {}, "optouts": {}}
    for start in range(0, len(numbers), LOOKUP_CHUNK):
        chunk = numbers[start:start + LOOKUP_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(f"SELECT 'blacklist', number, created_at FROM blacklist "
                          f"WHERE number IN ({marks}) UNION ALL "
                          f"SELECT 'optouts', number, created_at FROM optouts "
                          f"WHERE number IN ({marks})", chunk + chunk).fetchall()
        for table, number, created_at in rows:
            found[table][number] = created_at
    return found["blacklist"], found["optouts"]


def send_time_check(db: Any, config: Config | None = None) -> SendTimeCheck:
    """The check made again when a queued message is claimed: the reason it must not go out
    now (it is then cancelled with that reason), or None.

    The rules are those of enqueue, applied to what changed since: a blacklisted number receives
    nothing; an opted-out number receives no campaign or recurring message; a direct message is
    stopped only with `[optout] block_direct`, and only by an opt-out that came after it was
    queued (an earlier one was seen, or overridden, when it was queued).
    """
    ensure_schema(db, SCHEMA)
    return SendTimeCheck(db, (config or Config.default()).optout.block_direct)


@dataclass(frozen=True, slots=True)
class SendTimeCheck:
    """`send_time_check`'s rule: `check(message)` for one message, `check.many(messages)` for a
    dispatch round's (their numbers looked up together, `listed_since`)."""

    db: Any
    block_direct: bool

    def __call__(self, message: Any) -> str | None:
        return self.many([message])[0]

    def many(self, messages: Sequence[Any]) -> list[str | None]:
        """The reason each of `messages` must not go out now, or None; in their order."""
        if not messages:
            return []
        blacklisted, opted_out = listed_since(self.db, (message.to for message in messages))
        return [self._refusal(message, blacklisted, opted_out) for message in messages]

    def _refusal(self, message: Any, blacklisted: dict[str, str],
                 opted_out: dict[str, str]) -> str | None:
        if message.to in blacklisted:
            return f"on the blacklist since {blacklisted[message.to]}"
        created_at = opted_out.get(message.to)
        if created_at is None:
            return None
        bulk = message.campaign_id is not None or str(message.client_id or "").startswith("job:")
        queued_at = now_iso(message.created_at) if message.created_at else ""
        # the same millisecond counts as after: when in doubt, compliance wins
        if bulk or (self.block_direct and created_at >= queued_at):
            return f"opted out at {created_at}"
        return None


def field_of(message: Any, name: str, default: Any = None) -> Any:
    """Read a field of an inbound message given as a dict, row or dataclass."""
    if isinstance(message, dict):
        return message.get(name, default)
    return getattr(message, name, default)


def make_optout_handler(config: Config):
    """The inbound handler: opt the sender out on a keyword reply, and confirm if configured."""
    settings = config.optout

    def handle_optout(spool: Any, message: Any, _config: Any = None) -> bool:
        keyword = settings.matches(field_of(message, "text", ""))
        if keyword is None:
            return False
        sender = field_of(message, "sender", "")
        inbound_id = field_of(message, "id")
        try:
            number = normalise(sender, config.region)
        except InvalidNumber:
            log.info("opt-out keyword %r from %r, which is not a phone number", keyword, sender)
            return False
        # under the sender's lock, as the auto-reply's decision (`autoreply.py`)
        with locked(spool.db, f"sender:{number}"):
            added = OptOutList(spool.db, config.region).add(sender, keyword=keyword,
                                                            source="reply", inbound_id=inbound_id)
            log.info("%s opted out with %r", sender, keyword)
            if added and settings.confirm and not OptOutList(spool.db).is_blacklisted(sender):
                sim = field_of(message, "sim")
                client_id = f"optout-confirm:{inbound_id}" if inbound_id is not None else None
                spool.enqueue(sender, settings.confirm_text, client_id=client_id,
                              sims=[sim] if sim else None)
        return True

    return handle_optout
