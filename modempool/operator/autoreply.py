"""Auto-reply (自动回复): keyword or pattern → reply text, with a per-sender cooldown.

Rules come from the configuration and from the `autoreply_rules` table (`modempool autoreply add`):

```toml
[[autoreply]]
keywords = ["营业时间", "几点"]     # the text contains one of them (NFKC, case-insensitive)
reply = "营业时间：每天 9:00-18:00。"
[[autoreply]]
pattern = "^(价格|报价)"            # or a regular expression
reply = "报价请致电 400-000-0000"
sim = "m1"                         # only for messages received on this SIM
hours = "09:00-18:00"              # only in this local time window (may wrap midnight)
cooldown = 3600                    # seconds; default 3600
```
The first matching rule answers. A sender who got any auto-reply less than `cooldown` seconds ago
gets none, so two auto-responders cannot ping-pong. Replies go out from the SIM the message came in
on. Opt-out keywords, blacklisted senders and senders who opted out are never answered (an opt-out
is confirmed by the opt-out handler alone, `[optout] confirm`). Each decision is in `autoreply_log`.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

from modempool.errors import ConfigError, InvalidNumber, NotFound, PoolError, SpoolFailure
from modempool.numbers import normalise
from modempool.operator.db import ensure_schema, locked, now_iso, parse_time, transaction
from modempool.config import Config
from modempool.operator.optout import OptOutList, field_of
from modempool.spool.plain_text import refuse_nul

log = logging.getLogger("modempool.operator.autoreply")

DEFAULT_COOLDOWN = 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS autoreply_rules (
    id INTEGER PRIMARY KEY,
    keywords TEXT NOT NULL DEFAULT '[]',
    pattern TEXT,
    reply TEXT NOT NULL,
    sim TEXT,
    hours TEXT,
    cooldown INTEGER NOT NULL DEFAULT 3600,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS autoreply_log (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    rule TEXT NOT NULL,
    inbound_id INTEGER,
    message_id INTEGER,
    outcome TEXT NOT NULL,          -- replied | cooldown | opted_out
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS autoreply_log_sender ON autoreply_log (sender, created_at);
"""


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def parse_window(text: str | None) -> tuple[time, time] | None:
    """`09:00-18:00` → (09:00, 18:00); ConfigError if malformed."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*[-–~]\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise ConfigError(f"time window {text!r} must look like 09:00-18:00",
                          code="hours_form", params={"hours": text})
    h1, m1, h2, m2 = map(int, match.groups())
    try:
        return time(h1, m1), time(h2 % 24, m2)
    except ValueError:
        raise ConfigError(f"time window {text!r} has an impossible time", code="hours_form",
                          params={"hours": text}) from None


def in_window(window: tuple[time, time] | None, moment: datetime) -> bool:
    if window is None:
        return True
    start, end = window
    now = moment.time()  # `moment` is local already (the pool's time zone)
    return start <= now < end if start <= end else (now >= start or now < end)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # "config:1" or "db:3"
    reply: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    sim: str | None = None
    hours: str | None = None
    cooldown: int = DEFAULT_COOLDOWN

    def __post_init__(self) -> None:
        if not self.reply.strip():
            raise ConfigError(f"auto-reply rule {self.name} has no reply text",
                              code="autoreply_no_reply")
        if not self.keywords and not self.pattern:
            raise ConfigError(f"auto-reply rule {self.name} needs keywords or a pattern",
                              code="autoreply_no_keywords")
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ConfigError(f"auto-reply rule {self.name}: bad pattern: {exc}") from None
        parse_window(self.hours)

    def matches(self, text: str, sim: str | None, moment: datetime) -> bool:
        if self.sim and sim != self.sim:
            return False
        if not in_window(parse_window(self.hours), moment):
            return False
        folded = _fold(text)
        if any(_fold(k) in folded for k in self.keywords):
            return True
        return bool(self.pattern and re.search(self.pattern, folded, re.IGNORECASE))

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "keywords": list(self.keywords), "pattern": self.pattern,
                "reply": self.reply, "sim": self.sim, "hours": self.hours, "cooldown": self.cooldown}

    to_dict = as_dict   # the name every result of `Pool` answers to


def rules_from_config(config: Config) -> list[Rule]:
    """The `[[autoreply]]` rules of the config, named config:1, config:2, ..."""
    return [Rule(f"config:{index}", r.reply, r.keywords, r.pattern, r.sim, r.hours, r.cooldown)
            for index, r in enumerate(config.autoreply, start=1)]


@dataclass(frozen=True, slots=True)
class AutoReplyEntry:
    """One decision of the auto-reply: which rule matched a sender's SMS, and the `outcome`
    (`replied` with the reply's `message_id`, `cooldown`, `opted_out`)."""

    id: int
    sender: str
    rule: str
    inbound_id: int | None
    message_id: int | None
    outcome: str
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "rule": self.rule,
                "inbound_id": self.inbound_id, "message_id": self.message_id,
                "outcome": self.outcome,
                "created_at": now_iso(self.created_at) if self.created_at else None}


class AutoReplies:
    """Rules stored in the database, plus the log of what was answered."""

    def __init__(self, db: Any) -> None:
        self.db = db
        ensure_schema(db, SCHEMA)

    def add(self, reply: str, *, keywords: tuple[str, ...] = (), pattern: str | None = None,
            sim: str | None = None, hours: str | None = None,
            cooldown: int = DEFAULT_COOLDOWN) -> Rule:
        for what, value in (("reply", reply), ("keywords", keywords), ("pattern", pattern),
                            ("SIM", sim), ("hours", hours)):
            refuse_nul(f"the auto-reply's {what}", value)
        Rule("(new)", reply, keywords, pattern, sim, hours, cooldown)  # validates
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO autoreply_rules (keywords, pattern, reply, sim, hours, cooldown,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [json.dumps(list(keywords), ensure_ascii=False), pattern, reply, sim, hours,
                 cooldown, now_iso()])
        return Rule(f"db:{cur.lastrowid}", reply, keywords, pattern, sim, hours, cooldown)

    def remove(self, rule_id: int) -> None:
        with transaction(self.db):
            if self.db.execute("DELETE FROM autoreply_rules WHERE id = ?", [rule_id]).rowcount == 0:
                raise NotFound(f"no auto-reply rule {rule_id}")

    def rules(self) -> list[Rule]:
        rows = self.db.execute("SELECT id, keywords, pattern, reply, sim, hours, cooldown"
                               " FROM autoreply_rules WHERE enabled = 1 ORDER BY id").fetchall()
        return [Rule(f"db:{r[0]}", r[3], tuple(json.loads(r[1])), r[2], r[4], r[5], r[6])
                for r in rows]

    def last_reply_to(self, sender: str) -> str | None:
        row = self.db.execute("SELECT max(created_at) FROM autoreply_log WHERE sender = ?"
                              " AND outcome = 'replied'", [sender]).fetchone()
        return row[0] if row else None

    def log(self, limit: int = 50) -> list[AutoReplyEntry]:
        """What was answered or held back, newest first (the last `limit`)."""
        cur = self.db.execute("SELECT id, sender, rule, inbound_id, message_id, outcome, created_at"
                              " FROM autoreply_log ORDER BY id DESC LIMIT ?", [limit])
        return [AutoReplyEntry(*row[:6], created_at=parse_time(row[6])) for row in cur.fetchall()]

    def record(self, sender: str, rule: str, inbound_id: Any, message_id: Any, outcome: str,
               moment: datetime) -> None:
        with transaction(self.db):
            self.db.execute("INSERT INTO autoreply_log (sender, rule, inbound_id, message_id,"
                            " outcome, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            [sender, rule, inbound_id, message_id, outcome, now_iso(moment)])


def make_autoreply_handler(config: Config,
                           clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
    """The inbound handler answering by the first matching rule (config rules, then DB rules)."""
    config_rules = rules_from_config(config)
    optout = config.optout

    def handle_autoreply(spool: Any, message: Any, _config: Any = None) -> int | None:
        text = str(field_of(message, "text", "") or "")
        sender = str(field_of(message, "sender", "") or "")
        try:
            sender = normalise(sender, config.region) if sender else sender
        except InvalidNumber:
            return None  # a short code or alphanumeric sender cannot be answered
        sim = field_of(message, "sim")
        inbound_id = field_of(message, "id")
        if not sender or optout.matches(text) or OptOutList(spool.db, config.region).is_blacklisted(sender):
            return None
        now = clock().astimezone(config.tz)   # rule hours are local to [pool] timezone
        replies = AutoReplies(spool.db)
        rule = next((r for r in config_rules + replies.rules() if r.matches(text, sim, now)), None)
        if rule is None:
            return None
        # The opt-out, cooldown and reply below are read and written under the sender's lock,
        # in one transaction: two SMS from one sender (two SIMs, two threads or two hosts)
        # get one reply, and an opt-out being recorded is seen before it is answered.
        with locked(spool.db, f"sender:{sender}"):
            return _answer(spool, replies, rule, sender, sim, inbound_id, now)

    def _answer(spool: Any, replies: AutoReplies, rule: Any, sender: str, sim: Any,
                inbound_id: Any, now: datetime) -> int | None:
        if OptOutList(spool.db, config.region).is_opted_out(sender):
            # 退订 means no more messages from us: the opt-out handler's confirmation (sent
            # when the sender opted out) is the last one, whatever they write afterwards.
            log.info("no auto-reply to %s: opted out", sender)
            replies.record(sender, rule.name, inbound_id, None, "opted_out", now)
            return None
        last = replies.last_reply_to(sender)
        if last and now - datetime.fromisoformat(last) < timedelta(seconds=rule.cooldown):
            log.info("auto-reply to %s held back: cooldown (last reply %s)", sender, last)
            replies.record(sender, rule.name, inbound_id, None, "cooldown", now)
            return None
        try:
            client_id = f"autoreply:{inbound_id}" if inbound_id is not None else None
            reply = spool.enqueue(sender, rule.reply, client_id=client_id,
                                  sims=[sim] if sim else None)
        except SpoolFailure:
            raise   # the database's, not the rules': nothing decided, the daemon logs it
        except PoolError as exc:
            log.info("no auto-reply to %r: %s", sender, exc)
            return None
        replies.record(sender, rule.name, inbound_id, reply.id, "replied", now)
        log.info("auto-reply %s to %s (message %s)", rule.name, sender, reply.id)
        return reply.id

    return handle_autoreply
