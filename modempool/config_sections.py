"""What each section of the config file is: a frozen dataclass per section (its fields are
the keys, with their defaults), and the rules that belong to one section's values (a retry's
delay, an opt-out keyword's match, a signature, a balance rule's answer). config.py reads the
file into them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modempool.callback_guard import CallbackAllow
from modempool.config_values import fold

DEFAULT_OPTOUT_KEYWORDS = ("TD", "T", "退订", "N", "STOP", "UNSUBSCRIBE")
DEFAULT_CONFIRM_TEXT = "您已成功退订，将不再收到此类短信。"
DEFAULT_FORWARD_FORMAT = "[{name}{sender}] {text}"
FORWARD_FIELDS = ("sender", "name", "text", "sim", "received_at")


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
    answer_wait: float | None = None        # over [timing]'s, for this modem only
    timeouts: tuple[tuple[str, float], ...] = ()   # (command, seconds), over [timing]'s


@dataclass(frozen=True, slots=True)
class TimingConfig:
    """`[timing]`: how long every modem is waited for (at_commands.Timing): `answer_wait` for
    its first `AT` (resynchronising and a slow modem's waits are multiples of it), `timeouts`
    per AT command over the vendor profile's. A `[[modem]]` may set either for itself."""

    answer_wait: float = 1.0
    timeouts: tuple[tuple[str, float], ...] = ()

    def of(self, modem: ModemConfig) -> tuple[float, dict[str, float]]:
        """`modem`'s answer wait and command timeouts: its own over these."""
        answer_wait = modem.answer_wait if modem.answer_wait is not None else self.answer_wait
        return answer_wait, {**dict(self.timeouts), **dict(modem.timeouts)}


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
    pass_env: tuple[str, ...] = ()      # daemon variables the command also gets


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
