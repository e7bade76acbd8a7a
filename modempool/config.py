"""Configuration: a TOML file read with tomllib and checked against the tables below.

Every mistake becomes a ConfigError naming the file, the line and the key, e.g.
`modempool.toml, line 9, [[modem]] #2 key 'per_day': expected an integer, got 'lots'`.
Relative paths (the spool file) are relative to the config file's directory.

Every section parses into a frozen dataclass here, and nothing else reads the TOML: an unknown
section or key, or a value of the wrong type, is an error. To add a section `[name]`: write its
dataclass (fields = keys, with defaults), put its checks in `SECTIONS` and the class in
`SECTION_TYPES`, and give `Config` a field `name` (see docs/architecture.md, "Config").
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.callback_guard import CallbackAllow
from modempool.config_values import (amount, any_text, at_least, between, callback_allow, clock,
                                     clock_window, flag, fold, listen_address, message_format, one_of, pin_code,
                                     positive_seconds, postgres_url, prefixes, region_code, regex, seconds,
                                     strategy_name, text, text_list, timezone_name)
from modempool.errors import ConfigError, PoolError, UnknownSim
from modempool.numbers import DEFAULT_REGION
from modempool.spool.sendable import CODEC_MAX_PARTS, DEFAULT_MAX_PARTS

if TYPE_CHECKING:
    from modempool.spool import Spool

CONFIG_NAME = "modempool.toml"
DEFAULT_SPOOL = "modempool.db"
DEFAULT_SIMULATED_MODEMS = 4

DEFAULT_OPTOUT_KEYWORDS = ("TD", "T", "退订", "N", "STOP", "UNSUBSCRIBE")
DEFAULT_CONFIRM_TEXT = "您已成功退订，将不再收到此类短信。"
DEFAULT_FORWARD_FORMAT = "[{name}{sender}] {text}"
FORWARD_FIELDS = ("sender", "name", "text", "sim", "received_at")


# The value types of the operator sections' keys, checked when the file is read so a mistake is
# a file/line/key error at once, never a crash (or `"false"` read as true) at run time. Their
# meaning stays with the operator modules; keys not listed here pass through.
def default_paths() -> list[Path]:
    """Where a config is looked for when none is given: here, then the user's config dir."""
    return [Path.cwd() / CONFIG_NAME, Path.home() / ".config" / "modempool" / CONFIG_NAME]


@dataclass(frozen=True, slots=True)
class ModemConfig:
    """One `[[modem]]` table: a modem port and the limits of the SIM in it."""

    name: str
    port: str
    pin: str | None = None
    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None
    allow_prefixes: tuple[str, ...] = ()    # E.164 prefixes this SIM may send to; () = any
    allow_carriers: tuple[str, ...] = ()    # carriers ("China Mobile") it may send to; () = any
    priority: int = 0
    profile: str | None = None              # vendor profile name (at_commands.profiles)
    baudrate: int = 115200


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How temporary errors are retried: `backoff` seconds, doubled each attempt up to
    `backoff_max`. The one retry policy: the dispatcher uses it as it is."""

    max_attempts: int = 5
    backoff: float = 30.0
    backoff_max: float = 900.0
    resend_ambiguous: bool = False     # True: ambiguous messages are queued again automatically
    quarantine_after: int = 3          # failed sends in a row (any error) that take a SIM out of rotation
    quarantine_seconds: float = 60.0   # how long before a quarantined SIM is probed again
    send_timeout: float = 60.0         # silence after a PDU before the send is ambiguous

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the attempt after `attempts` tries."""
        return min(self.backoff_max, self.backoff * 2 ** max(0, attempts - 1))


@dataclass(frozen=True, slots=True)
class OptOutConfig:
    """`[optout]`: the reply keywords that opt a sender out (退订), the confirmation, and whether
    direct sends to opted-out numbers are refused too."""

    keywords: tuple[str, ...] = DEFAULT_OPTOUT_KEYWORDS
    confirm: bool = False
    confirm_text: str = DEFAULT_CONFIRM_TEXT
    block_direct: bool = False

    def matches(self, message: str) -> str | None:
        """The keyword that the whole text is (after NFKC and case folding), or None."""
        folded = fold(message or "")
        return next((k for k in self.keywords if folded == fold(k)), None)


@dataclass(frozen=True, slots=True)
class AutoReplyConfig:
    """One `[[autoreply]]` rule: keywords or a pattern, and the reply."""

    reply: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    sim: str | None = None
    hours: str | None = None            # local window, e.g. "09:00-18:00"
    cooldown: int = 3600


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    """`[forward]`: forward received SMS to numbers and/or a command (`run_on_receive`)."""

    to: tuple[str, ...] = ()            # E.164, normalised in the pool's region
    format: str = DEFAULT_FORWARD_FORMAT
    command: str | None = None
    timeout: float = 10.0
    retries: int = 3
    retry_delay: float = 5.0
    max_parallel: int = 4


@dataclass(frozen=True, slots=True)
class SensitiveConfig:
    """`[sensitive]`: words that block a campaign (and a file of more, one per line)."""

    words: tuple[str, ...] = ()
    file: str | None = None


@dataclass(frozen=True, slots=True)
class SignatureConfig:
    """`[signature]`: put in front of / after campaign messages (marketing only by default)."""

    text: str = ""
    footer: str = ""
    marketing_only: bool = True

    def apply(self, message: str, *, marketing: bool) -> str:
        """Add the signature in front and the footer at the end, unless already there."""
        if self.marketing_only and not marketing:
            return message
        if self.text and not message.startswith(self.text):
            message = self.text + message
        if self.footer and not message.endswith(self.footer):
            message = message + self.footer
        return message


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """`[simulator]`: a simulated bank instead of hardware (`modems` of them)."""

    modems: int | None = None
    personality: str = "simcom"
    latency: float = 0.0
    seed: int | None = None
    realistic: bool = False
    chatter: float = 1.0


@dataclass(frozen=True, slots=True)
class BalanceRule:
    """One `[[balance]]` table: how the SIMs of an operator are asked for their credit, by USSD
    (`ussd = "*100#"`) or by SMS (`sms_to = "10086"`, `sms_text = "CXYE"`), and how the answer
    is read: `pattern`'s first group (default: the first number in the answer)."""

    operator: str = "*"                 # as the modem names it ("China Mobile"); "*" any
    ussd: str | None = None
    sms_to: str | None = None
    sms_text: str | None = None
    pattern: str = r"(\d+(?:\.\d+)?)"
    low: float | None = None            # below this: a low-balance event and a warning
    empty: float = 0.0                  # at or below this: out of credit, out of rotation
    check_every: float = 6 * 3600.0     # seconds between checks of one SIM
    check_after: int | None = None      # also after this many SMS sent by the SIM
    reply_timeout: float = 120.0        # SMS queries: how long to wait for the reply

    def applies_to(self, operator: str | None) -> bool:
        return self.operator == "*" or (operator or "").strip().lower() == self.operator.strip().lower()

    def amount(self, answer: str) -> float | None:
        """The balance read from an answer (None when the pattern does not match)."""
        match = re.search(self.pattern, answer)
        if not match:
            return None
        try:
            return float((match.group(1) if match.groups() else match.group(0)).replace(",", ""))
        except ValueError:
            return None


def balance_rule(table: dict[str, Any]) -> BalanceRule:
    """A checked BalanceRule (ValueError naming what is wrong)."""
    rule = BalanceRule(**table)
    if bool(rule.ussd) == bool(rule.sms_to or rule.sms_text):
        raise ValueError("give either ussd, or sms_to and sms_text")
    if rule.sms_to and not rule.sms_text or rule.sms_text and not rule.sms_to:
        raise ValueError("an SMS balance query needs both sms_to and sms_text")
    try:
        re.compile(rule.pattern)
    except re.error as exc:
        raise ValueError(f"pattern is not a regular expression: {exc}") from None
    if rule.low is not None and rule.low < rule.empty:
        raise ValueError("low must not be below empty")
    return rule


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """`[http]`: the HTTP API (docs/http.md). `listen` None: `run` serves no API."""

    listen: str | None = None          # "127.0.0.1:8080"; `modempool serve` defaults to that
    public: bool = False               # True: a non-loopback address is wanted
    behind_proxy: bool = False         # a reverse proxy (nginx) terminates TLS in front
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body: int = 16 * 1024 * 1024   # bytes; a 100,000-recipient batch is about 2 MB
    auth_failures_per_minute: int = 10  # per client address, then 429
    sidecar_nice: int = 5              # `run`'s API process this much below the daemon's CPU priority
    # Where callbacks given by senders (Kannel dlr-url) may go beyond public addresses:
    # URL prefixes and networks (modempool/callback_guard.py, docs/http.md "Security").
    callback_allow: CallbackAllow = CallbackAllow()


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    """`[webhooks]`: how deliveries are retried (at least 24 hours, doubling waits)."""

    retry_base: float = 5.0
    retry_max: float = 3600.0
    give_up_after: float = 26 * 3600.0
    timeout: float = 10.0
    keep_days: int = 30          # delivered and given-up deliveries kept this long, then pruned


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, every section typed; `Config.default()` when there is no file."""

    path: Path | None                   # None: no file found, the embedded default
    spool_path: Path
    modems: tuple[ModemConfig, ...] = ()
    spool_url: str | None = None        # postgresql://...: a spool shared by several daemons
    region: str = DEFAULT_REGION
    strategy: str = "least-loaded"
    retry: RetryConfig = field(default_factory=RetryConfig)
    # The quiet period (start, end) in local time: messages flagged quiet_hours are not sent
    # from start until end (22:00 → 08:00, i.e. sending hours 08:00–22:00).
    quiet_hours: tuple[time, time] = (time(22, 0), time(8, 0))
    simulator: int | None = None        # simulated modems to start, None = real hardware
    timezone: str | None = None         # IANA name for day/month counters; None = system local
    lease_seconds: float = 300.0
    # a shared spool: a daemon elsewhere whose heartbeat stood still this long is dead, and its
    # run-out leases are taken (heartbeats every sixth of it)
    silent_after: float = 30.0
    lock_dir: str | None = None         # UUCP lock files (LCK..ttyUSB0); None: $MODEMPOOL_LOCK_DIR or /run/lock
    max_parts: int = DEFAULT_MAX_PARTS  # longer text is refused at enqueue
    synchronous: str = "normal"      # "full": also survives a power cut (slower)
    # a spool call of the daemon unanswered this long is logged (a commit waiting for a standby)
    slow_spool_after: float = 10.0
    log_level: str = "INFO"
    log_file: str | None = None
    log_format: str = "text"            # "json": one JSON object per line
    balance: tuple[BalanceRule, ...] = ()
    simulation: SimulatorConfig = field(default_factory=SimulatorConfig)
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    autoreply: tuple[AutoReplyConfig, ...] = ()
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    sensitive: SensitiveConfig = field(default_factory=SensitiveConfig)
    signature: SignatureConfig = field(default_factory=SignatureConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    @classmethod
    def default(cls) -> Config:
        """Every default, no file (for library use without a config)."""
        return cls(path=None, spool_path=Path.cwd() / DEFAULT_SPOOL)

    @property
    def tz(self) -> tzinfo | None:
        if self.timezone is None:
            return None
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def is_quiet(self, moment: datetime | None = None) -> bool:
        """Whether `moment` (default now) falls in the quiet period, in local time."""
        local = (moment or datetime.now().astimezone()).astimezone(self.tz).time()
        start, end = self.quiet_hours
        if start <= end:
            return start <= local < end
        return local >= start or local < end

    def modem(self, name: str) -> ModemConfig | None:
        return next((m for m in self.modems if m.name == name), None)

    def balance_rule(self, operator: str | None) -> BalanceRule | None:
        """How a SIM of `operator` is asked for its balance (the first rule that applies)."""
        return next((rule for rule in self.balance if rule.applies_to(operator)), None)

    def check_sims(self, names: Iterable[str]) -> None:
        """UnknownSim if any of `names` is no configured modem: a message bound to it would wait
        for nothing. (A simulated bank names its modems as it starts; nothing to check then.)"""
        known = [modem.name for modem in self.modems]
        unknown = [name for name in names if name not in known]
        if unknown and known:
            # the file's path is not named: the words reach API clients too
            raise UnknownSim(f"no modem named {', '.join(unknown)} in the configuration "
                            f"(configured: {', '.join(known)})",
                            params={"sims": ", ".join(unknown), "configured": ", ".join(known)})

    def open_spool(self, *, create: bool = True, despite_older_daemons: bool = False) -> Spool:
        """The spool this configuration names, created if missing (unless `create` is false:
        then an empty one that leaves no file); `despite_older_daemons`: upgraded even where
        that breaks older daemons still running (`modempool spool upgrade`)."""
        from modempool.spool import Spool

        return Spool(self.spool_url or self.spool_path, region=self.region, tz=self.tz,
                     synchronous=self.synchronous, max_parts=self.max_parts, create=create,
                     despite_older_daemons=despite_older_daemons)


# ---- the checks, as data ------------------------------------------------------------------
# Each key maps to (what it must be, converter). Converters raise ValueError with a message.

SECTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "spool": {"path": text, "url": postgres_url,
              "synchronous": one_of("off", "normal", "full", "extra"),
              "slow_after": positive_seconds},
    "pool": {"region": region_code, "strategy": strategy_name, "timezone": timezone_name,
             "lease_seconds": positive_seconds, "silent_after": positive_seconds,
             "lock_dir": text,
             "max_parts": between(1, CODEC_MAX_PARTS)},
    "modem": {"name": text, "port": text, "pin": pin_code, "per_minute": at_least(1),
              "per_day": at_least(1), "per_month": at_least(1), "allow_prefixes": prefixes,
              "allow_carriers": text_list,
              "priority": at_least(-1000), "profile": text, "baudrate": at_least(300)},
    "retry": {"max_attempts": at_least(1), "backoff": seconds, "backoff_max": seconds,
              "resend_ambiguous": flag, "quarantine_after": at_least(1),
              "quarantine_seconds": seconds, "send_timeout": seconds},
    "quiet_hours": {"start": clock, "end": clock},
    "simulator": {"modems": at_least(1), "personality": text, "latency": seconds,
                  "seed": at_least(0), "realistic": flag, "chatter": seconds},
    "logging": {"level": one_of("debug", "info", "warning", "error"), "file": text,
                "format": one_of("text", "json")},
    "optout": {"keywords": text_list, "confirm": flag, "confirm_text": text,
               "block_direct": flag},
    "autoreply": {"reply": text, "keywords": text_list, "keyword": text_list, "pattern": regex,
                  "sim": text, "hours": clock_window, "cooldown": at_least(0)},
    "forward": {"to": text_list, "format": message_format(*FORWARD_FIELDS), "command": text,
                "run_on_receive": text, "timeout": positive_seconds, "retries": at_least(0),
                "retry_delay": seconds, "max_parallel": at_least(1)},
    "sensitive": {"words": text_list, "file": text},
    "signature": {"text": any_text, "footer": any_text, "marketing_only": flag},
    "http": {"listen": listen_address, "public": flag, "behind_proxy": flag, "tls_cert": text,
             "tls_key": text, "max_body": at_least(1024), "auth_failures_per_minute": at_least(1),
             "sidecar_nice": between(0, 19), "callback_allow": callback_allow},
    "balance": {"operator": text, "ussd": text, "sms_to": text, "sms_text": text,
                "pattern": text, "low": amount, "empty": amount, "check_every": seconds,
                "check_after": at_least(1), "reply_timeout": seconds},
    "webhooks": {"retry_base": seconds, "retry_max": seconds, "give_up_after": at_least(86400),
                 "timeout": seconds, "keep_days": at_least(1)},
}
ARRAY_SECTIONS = frozenset({"modem", "balance", "autoreply"})   # [[name]] tables
SINGLE_TABLE_OK = frozenset({"autoreply"})           # ... where one [name] table is also fine
# Sections whose keys are the fields of their dataclass, built as they are (Config.<section>).
SECTION_TYPES: dict[str, type] = {
    "optout": OptOutConfig, "sensitive": SensitiveConfig, "signature": SignatureConfig,
    "simulator": SimulatorConfig, "http": HttpConfig, "webhooks": WebhooksConfig,
}


# ---- loading ------------------------------------------------------------------------------

def load_config(path: str | Path | None = None, *, simulate: int | None = None) -> Config:
    """Read `path`, or the first of `default_paths()` that exists, or the embedded default.

    The embedded default (no file at all) uses ./modempool.db and a simulated bank of
    DEFAULT_SIMULATED_MODEMS modems, so a first run needs nothing but the package.
    `simulate=N` (the `--simulate N` option) asks for N simulated modems whatever the file says.
    """
    config = _load(path)
    if simulate is not None:
        if simulate < 1:
            raise ConfigError(f"--simulate needs at least 1 modem, got {simulate}")
        config = replace(config, simulator=simulate)
    return config


def _load(path: str | Path | None) -> Config:
    if path is None:
        found = next((p for p in default_paths() if p.is_file()), None)
        if found is None:
            return Config(path=None, spool_path=Path.cwd() / DEFAULT_SPOOL,
                          simulator=DEFAULT_SIMULATED_MODEMS)
        path = found
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(path, None, None, "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, None, None, f"cannot read config file: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Check and convert the TOML `text` read from `path`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        key = _key_on_line(text, line)
        raise _error(path, line, key, f"not valid TOML: {exc}") from None
    where = _Locator(text, path)
    values: dict[str, dict[str, Any]] = {}
    arrays: dict[str, list[dict[str, Any]]] = {}
    for section, content in raw.items():
        if section not in SECTIONS:
            hint = difflib.get_close_matches(section, list(SECTIONS), n=1)
            raise where.error(None, None, section, f"unknown section [{section}]"
                              + (f" (did you mean [{hint[0]}]?)" if hint else ""))
        if section in ARRAY_SECTIONS:
            if isinstance(content, dict) and section in SINGLE_TABLE_OK:
                arrays[section] = [where.check(section, None, content)]
                continue
            if not isinstance(content, list):
                raise where.error(None, None, section, f"use [[{section}]] (one table per {section})")
            arrays[section] = [where.check(section, index, table)
                               for index, table in enumerate(content)]
        else:
            if not isinstance(content, dict):
                raise where.error(None, None, section, f"[{section}] must be a table")
            values[section] = where.check(section, None, content)
    modems = _modems(arrays.get("modem", []), where)
    names = [m.name for m in modems]
    for index, modem in enumerate(modems):
        if names.index(modem.name) != index:
            raise where.error("modem", index, "name", f"duplicate modem name {modem.name!r}")
    devices: dict[str, ModemConfig] = {}
    for index, modem in enumerate(modems):
        # Two modems on one device steal each other's replies: compare what the names lead to.
        device = os.path.realpath(modem.port)
        if device == os.devnull:  # a placeholder port (examples, tests): never opened
            continue
        if device in devices:
            first = devices[device]
            raise where.error("modem", index, "port",
                              f"{modem.port!r} is the same device as the port of modem "
                              f"{first.name!r} ({device}); each modem needs its own port")
        devices[device] = modem
    spool, pool, retry = values.get("spool", {}), values.get("pool", {}), values.get("retry", {})
    quiet, logging_ = values.get("quiet_hours", {}), values.get("logging", {})
    spool_path = Path(spool.get("path", DEFAULT_SPOOL)).expanduser()
    if not spool_path.is_absolute():
        spool_path = path.resolve().parent / spool_path
    default = Config(path=path, spool_path=spool_path)
    region = pool.get("region", default.region)
    typed = {name: kind(**values.get(name, {})) for name, kind in SECTION_TYPES.items()}
    return Config(
        path=path,
        spool_path=spool_path,
        spool_url=spool.get("url"),
        modems=tuple(modems),
        region=region,
        strategy=pool.get("strategy", default.strategy),
        retry=RetryConfig(**retry),
        quiet_hours=(quiet.get("start", default.quiet_hours[0]), quiet.get("end", default.quiet_hours[1])),
        simulator=values["simulator"].get("modems", DEFAULT_SIMULATED_MODEMS) if "simulator" in values else None,
        simulation=typed["simulator"], optout=typed["optout"], sensitive=typed["sensitive"],
        signature=typed["signature"], http=typed["http"], webhooks=typed["webhooks"],
        autoreply=tuple(_autoreply(rule, index, where)
                        for index, rule in enumerate(arrays.get("autoreply", []))),
        forward=_forward(values.get("forward", {}), region, where),
        timezone=pool.get("timezone"),
        lease_seconds=pool.get("lease_seconds", default.lease_seconds),
        silent_after=pool.get("silent_after", default.silent_after),
        lock_dir=pool.get("lock_dir"),
        max_parts=pool.get("max_parts", default.max_parts),
        synchronous=spool.get("synchronous", default.synchronous),
        slow_spool_after=spool.get("slow_after", default.slow_spool_after),
        log_level=logging_.get("level", default.log_level).upper(),
        log_file=_relative_to(path, logging_.get("file")),
        log_format=logging_.get("format", default.log_format),
        balance=tuple(_balance(arrays.get("balance", []), where)),
    )


def _modems(tables: list[dict[str, Any]], where: _Locator) -> list[ModemConfig]:
    for index, table in enumerate(tables):
        for required in ("name", "port"):
            if required not in table:
                raise _error(where.path, where.line_of("modem", index, None), required,
                             "missing: every modem needs a name and a port",
                             _table_name("modem", index))
    return [ModemConfig(**table) for table in tables]


def _balance(tables: list[dict[str, Any]], where: _Locator) -> list[BalanceRule]:
    rules = []
    for index, table in enumerate(tables):
        try:
            rules.append(balance_rule(table))
        except ValueError as exc:
            raise where.error("balance", index, None, str(exc)) from None
    return rules


def _autoreply(rule: dict[str, Any], index: int, where: _Locator) -> AutoReplyConfig:
    rule = dict(rule)
    if "reply" not in rule:
        raise where.error("autoreply", index, None, "missing key 'reply': the text to answer with")
    rule["keywords"] = rule.pop("keyword", ()) + rule.pop("keywords", ())
    if not rule["keywords"] and "pattern" not in rule:
        raise where.error("autoreply", index, None, "needs keywords or a pattern")
    return AutoReplyConfig(**rule)


def _forward(section: dict[str, Any], region: str, where: _Locator) -> ForwardConfig:
    from modempool.numbers import normalise

    section = dict(section)
    if "run_on_receive" in section:
        section.setdefault("command", section.pop("run_on_receive"))
    try:
        section["to"] = tuple(normalise(n, region) for n in section.get("to", ()))
    except PoolError as exc:
        raise where.error("forward", None, "to", str(exc)) from None
    return ForwardConfig(**section)


def _relative_to(config_path: Path, name: str | None) -> str | None:
    """A path from the config, relative to the config file's directory."""
    if name is None:
        return None
    target = Path(name).expanduser()
    return str(target if target.is_absolute() else config_path.resolve().parent / target)


class _Locator:
    """Checks tables and finds the line of a key by scanning the file text."""

    def __init__(self, text: str, path: Path) -> None:
        self.lines = text.splitlines()
        self.path = path

    def check(self, section: str, index: int | None, table: dict[str, Any]) -> dict[str, Any]:
        checks = SECTIONS[section]
        out = {}
        for key, value in table.items():
            if key not in checks:
                hint = difflib.get_close_matches(key, list(checks), n=1)
                raise self.error(section, index, key, "unknown key"
                                 + (f" (did you mean '{hint[0]}'?)" if hint else "")
                                 + f"; known keys: {', '.join(checks)}")
            try:
                out[key] = checks[key](value)
            except ValueError as exc:
                raise self.error(section, index, key, str(exc)) from None
        return out

    def error(self, section: str | None, index: int | None, key: str | None, problem: str) -> ConfigError:
        line = self.line_of(section, index, key)
        return _error(self.path, line, key, problem, _table_name(section, index))

    def line_of(self, section: str | None, index: int | None, key: str | None) -> int | None:
        """1-based line of `key` in table `section` (its `index`-th [[array]] entry), or of
        the table header when key is None; None when it cannot be found (inline tables)."""
        current, seen, header_line = None, {}, None
        for number, raw_line in enumerate(self.lines, start=1):
            line = raw_line.strip()
            header = re.fullmatch(r"\[\[\s*([^\]]+?)\s*\]\]\s*(#.*)?", line) or re.fullmatch(
                r"\[\s*([^\]]+?)\s*\]\s*(#.*)?", line)
            if header:
                name = header.group(1).strip('"\'')
                position = seen.get(name, 0)
                seen[name] = position + 1
                current = (name, position if line.startswith("[[") else None)
                if section is not None and current == (name, index) and name == section:
                    header_line = number
                    if key is None:
                        return number
                elif section is None and key is not None and name == key:
                    return number  # an unknown section: point at its header
                continue
            in_table = (section is None and current is None) or (
                current is not None and current == (section, index))
            if in_table and key is not None and re.match(
                    rf"""\s*["']?{re.escape(key)}["']?\s*=""", raw_line):
                return number
        return header_line


def _table_name(section: str | None, index: int | None) -> str:
    if section is None:
        return ""
    if index is not None:
        return f"[[{section}]] #{index + 1}"
    return f"[{section}]"


def _key_on_line(text: str, line: int | None) -> str | None:
    if line is None:
        return None
    lines = text.splitlines()
    if 0 < line <= len(lines):
        match = re.match(r"""\s*["']?([A-Za-z0-9_\-.]+)["']?\s*=""", lines[line - 1])
        if match:
            return match.group(1)
    return None


def _error(path: Path, line: int | None, key: str | None, problem: str, table: str = "") -> ConfigError:
    where = str(path) + (f", line {line}" if line else "")
    what = " ".join(p for p in (table, f"key '{key}'" if key else "") if p)
    error = ConfigError(f"{where}: {what + ': ' if what else ''}{problem}")
    error.file, error.line, error.key = str(path), line, key  # type: ignore[attr-defined]
    return error
