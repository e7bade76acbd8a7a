"""Configuration: a TOML file read with tomllib and checked against the tables below.

Every mistake becomes a ConfigError naming the file, the line and the key, e.g.
`modempool.toml, line 9, [[modem]] #2 key 'per_day': expected an integer, got 'lots'`.
Relative paths (the spool file) are relative to the config file's directory.

Every section parses into a frozen dataclass (config_sections.py), and nothing else reads the
TOML: an unknown section or key, or a value of the wrong type, is an error (config_where.py
finds its line). To add a section `[name]`: write its dataclass (fields = keys, with defaults)
in config_sections.py, put its checks in `SECTIONS` and the class in `SECTION_TYPES`, and give
`Config` a field `name` (see docs/architecture.md, "Config").
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

from modempool.config_sections import (FORWARD_FIELDS, AutoReplyConfig, BalanceRule,
                                       ForwardConfig, HttpConfig, ModemConfig, OptOutConfig,
                                       RetryConfig, SensitiveConfig, SignatureConfig,
                                       SimulatorConfig, TimingConfig, WebhooksConfig,
                                       balance_rule)
from modempool.config_values import (amount, any_text, at_least, between, callback_allow, clock,
                                     command_timeouts,
                                     clock_window, flag, listen_address, message_format, one_of, pin_code,
                                     positive_seconds, postgres_url, prefixes, region_code, regex, seconds,
                                     strategy_name, text, text_list, timezone_name,
                                     variable_names)
from modempool.config_where import Locator, config_error, key_on_line, table_name
from modempool.errors import ConfigError, PoolError, UnknownSim
from modempool.numbers import DEFAULT_REGION
from modempool.spool.sendable import CODEC_MAX_PARTS, DEFAULT_MAX_PARTS

if TYPE_CHECKING:
    from modempool.spool import Spool

CONFIG_NAME = "modempool.toml"
DEFAULT_SPOOL = "modempool.db"
DEFAULT_SIMULATED_MODEMS = 4


def default_paths() -> list[Path]:
    """Where a config is looked for when none is given: here, then the user's config dir."""
    return [Path.cwd() / CONFIG_NAME, Path.home() / ".config" / "modempool" / CONFIG_NAME]


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
    timing: TimingConfig = field(default_factory=TimingConfig)

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
# Each key maps to (what it must be, converter). Converters raise ValueError with a message:
# a mistake is a file/line/key error when the file is read, never a crash (or `"false"` read as
# true) at run time.

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
              "priority": at_least(-1000), "profile": text, "baudrate": at_least(300),
              "answer_wait": positive_seconds, "timeouts": command_timeouts},
    "timing": {"answer_wait": positive_seconds, "timeouts": command_timeouts},
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
                "retry_delay": seconds, "max_parallel": at_least(1),
                "pass_env": variable_names},
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
    "timing": TimingConfig,
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
        raise config_error(path, None, None, "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise config_error(path, None, None, f"cannot read config file: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Check and convert the TOML `text` read from `path`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        key = key_on_line(text, line)
        raise config_error(path, line, key, f"not valid TOML: {exc}") from None
    where = Locator(text, path, SECTIONS)
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
        timing=typed["timing"],
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


def _modems(tables: list[dict[str, Any]], where: Locator) -> list[ModemConfig]:
    for index, table in enumerate(tables):
        for required in ("name", "port"):
            if required not in table:
                raise config_error(where.path, where.line_of("modem", index, None), required,
                             "missing: every modem needs a name and a port",
                             table_name("modem", index))
    return [ModemConfig(**table) for table in tables]


def _balance(tables: list[dict[str, Any]], where: Locator) -> list[BalanceRule]:
    rules = []
    for index, table in enumerate(tables):
        try:
            rules.append(balance_rule(table))
        except ValueError as exc:
            raise where.error("balance", index, None, str(exc)) from None
    return rules


def _autoreply(rule: dict[str, Any], index: int, where: Locator) -> AutoReplyConfig:
    rule = dict(rule)
    if "reply" not in rule:
        raise where.error("autoreply", index, None, "missing key 'reply': the text to answer with")
    rule["keywords"] = rule.pop("keyword", ()) + rule.pop("keywords", ())
    if not rule["keywords"] and "pattern" not in rule:
        raise where.error("autoreply", index, None, "needs keywords or a pattern")
    return AutoReplyConfig(**rule)


def _forward(section: dict[str, Any], region: str, where: Locator) -> ForwardConfig:
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
