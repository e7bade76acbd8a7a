"""Every AT command we use, described once: its syntax, its reply prefix, its parser, its timeout.

A `Command` builds the line to write (`COMMANDS["read"].line(index=3)` → ``AT+CMGR=3``) and parses
the information lines of its `FinalResult` (`Command.parse(lines)`). Timeouts are defaults; a
vendor profile may override them by command name. The simulator may read this table too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import re
from typing import Any

from .urc import bare_pdu, first_int, split_fields, urc_name


@dataclass(frozen=True, slots=True)
class StoredPdu:
    """One message read from a store (``+CMGR``/``+CMGL``): its index, status and hex PDU."""

    index: int | None
    status: int | None
    pdu: str


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """One store of ``AT+CPMS?``: name, messages used, capacity."""

    store: str
    used: int
    total: int


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    template: str                       # "AT+CMGR={index}"
    prefix: str = ""                    # the name of its information lines, "+CMGR"
    timeout: float = 5.0
    parser: Callable[[tuple[str, ...], str], Any] | None = None
    expects_prompt: bool = False
    secret: bool = False                # its arguments must not be logged (PIN)

    def line(self, **arguments: object) -> str:
        return self.template.format(**arguments)

    def parse(self, lines: tuple[str, ...]) -> Any:
        """The value of the reply: what `parser` makes of the lines, or the lines themselves."""
        if self.parser is None:
            return lines
        return self.parser(lines, self.prefix)


# ---- parsers -------------------------------------------------------------------------------

def _payload(line: str, prefix: str) -> str:
    """`line` without its ``+NAME:`` head when it has one."""
    if prefix and urc_name(line) == prefix.upper():
        return line.partition(":")[2].strip()
    return line.strip()


def parse_text(lines: tuple[str, ...], prefix: str) -> str:
    """A one-value reply (``AT+CGMI`` → ``SIMCOM_Ltd``), with ``+CGMI:`` or vendor heads removed."""
    values = [_payload(line, prefix) for line in lines if line.strip()]
    if not values:
        return ""
    value = values[0]
    # Quectel/Huawei answer some identity queries as "Revision: X", "Manufacturer: X"
    head, colon, rest = value.partition(":")
    if colon and head.strip().lower() in ("revision", "manufacturer", "model", "imei"):
        value = rest.strip()
    return value.strip().strip('"')


def parse_fields(lines: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """The fields of the last line that carries `prefix` (``+CREG: 0,1`` → ``('0', '1')``)."""
    for line in reversed(lines):
        if urc_name(line) == prefix.upper():
            return split_fields(_payload(line, prefix))
    return ()


def parse_int(lines: tuple[str, ...], prefix: str) -> int | None:
    """The first field as an int (``+CMGS: 12`` → 12)."""
    return first_int(parse_fields(lines, prefix), 0)


def parse_digits(lines: tuple[str, ...], prefix: str) -> str:
    """A serial number (IMEI, IMSI, ICCID): the first run of hex digits found in the reply."""
    for line in lines:
        candidate = _payload(line, prefix)
        if ":" in candidate:
            candidate = candidate.partition(":")[2]
        candidate = candidate.strip().strip('"')
        if len(candidate) >= 6 and candidate.isalnum():
            return candidate
    return ""


def parse_cnum(lines: tuple[str, ...], prefix: str) -> str | None:
    """Own number from ``+CNUM: "alpha","+8613...",145`` (None when the SIM does not know it)."""
    for line in lines:
        if urc_name(line) == "+CNUM":
            fields = split_fields(_payload(line, prefix))
            if len(fields) >= 2 and fields[1]:
                return fields[1]
    return None


def parse_cpms(lines: tuple[str, ...], prefix: str) -> tuple[StoreUsage, ...]:
    """``+CPMS: "SM",3,50,"SM",3,50,"SM",3,50`` → usage of each store named."""
    fields = parse_fields(lines, prefix)
    usages: list[StoreUsage] = []
    for position in range(0, len(fields) - 2, 3):
        try:
            usages.append(StoreUsage(fields[position], int(fields[position + 1]),
                                     int(fields[position + 2])))
        except ValueError:
            break
    return tuple(usages)


def parse_stored_pdus(lines: tuple[str, ...], prefix: str) -> tuple[StoredPdu, ...]:
    """``+CMGL: <index>,<stat>,[alpha],<len>`` / ``+CMGR: <stat>,[alpha],<len>`` each + PDU line."""
    messages: list[StoredPdu] = []
    header: tuple[str, ...] | None = None
    for line in lines:
        if urc_name(line) == prefix.upper():
            header = split_fields(_payload(line, prefix))
            continue
        if header is None:
            continue
        pdu_line = bare_pdu(line)
        if prefix.upper() == "+CMGL":
            messages.append(StoredPdu(first_int(header, 0), first_int(header, 1), pdu_line))
        else:
            messages.append(StoredPdu(None, first_int(header, 0), pdu_line))
        header = None
    return tuple(messages)


def pin_retries_at(index: int) -> Callable[[tuple[str, ...], str], int | None]:
    """A parser of the PIN attempts left, field `index` of the reply (``+CPINR`` lists one line
    per code: the ``"SIM PIN"`` one counts)."""

    def parse(lines: tuple[str, ...], prefix: str) -> int | None:
        for line in lines:
            if urc_name(line) != prefix.upper():
                continue
            fields = split_fields(_payload(line, prefix))
            if prefix.upper() == "+CPINR" and fields and fields[0].upper() != "SIM PIN":
                continue
            return first_int(fields, index)
        return None

    return parse


def parse_cpms_choices(lines: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """``+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")`` → the first list (stores to read)."""
    for line in lines:
        if urc_name(line) == prefix.upper():
            payload = _payload(line, prefix)
            first = payload[payload.find("(") + 1: payload.find(")")] if "(" in payload else payload
            return tuple(name.strip().strip('"').upper() for name in first.split(",")
                         if name.strip().strip('"'))
    return ()


def parse_cusd(lines: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    return parse_fields(lines, prefix)


# ---- the table -----------------------------------------------------------------------------

def _table(*commands: Command) -> dict[str, Command]:
    return {command.name: command for command in commands}


COMMANDS: dict[str, Command] = _table(
    Command("attention", "AT", timeout=2.0),
    Command("echo_off", "ATE0", timeout=2.0),
    Command("echo_on", "ATE1", timeout=2.0),
    Command("verbose_errors", "AT+CMEE=1"),
    Command("pdu_mode", "AT+CMGF=0"),
    Command("sms_service", "AT+CSMS={service}", "+CSMS"),
    Command("new_message_routing", "{setting}"),           # AT+CNMI=..., from the profile
    Command("select_stores", 'AT+CPMS="{store}","{store}","{store}"', "+CPMS", parser=parse_cpms),
    Command("select_read_store", 'AT+CPMS="{store}"', "+CPMS", parser=parse_cpms),
    Command("store_usage", "AT+CPMS?", "+CPMS", parser=parse_cpms),
    Command("store_choices", "AT+CPMS=?", "+CPMS", parser=parse_cpms_choices),
    Command("pin_status", "AT+CPIN?", "+CPIN", timeout=10.0, parser=parse_text),
    Command("enter_pin", 'AT+CPIN="{pin}"', timeout=20.0, secret=True),
    # PIN attempts left: TS 27.007 8.65 +CPINR, and the vendors' own (Huawei ^CPIN:
    # <code>,[<times>],<puk>,<pin>,...; Quectel +QPINC: "SC",<pin>,<puk>; SIMCom +SPIC: <pin>,...)
    Command("pin_retries", 'AT+CPINR="SIM PIN"', "+CPINR", parser=pin_retries_at(1)),
    Command("pin_retries_huawei", "AT^CPIN?", "^CPIN", parser=pin_retries_at(3)),
    Command("pin_retries_quectel", 'AT+QPINC="SC"', "+QPINC", parser=pin_retries_at(1)),
    Command("pin_retries_simcom", "AT+SPIC", "+SPIC", parser=pin_retries_at(0)),
    Command("manufacturer", "AT+CGMI", "+CGMI", parser=parse_text),
    Command("model", "AT+CGMM", "+CGMM", parser=parse_text),
    Command("revision", "AT+CGMR", "+CGMR", parser=parse_text),
    Command("imei", "AT+CGSN", "+CGSN", parser=parse_digits),
    Command("imsi", "AT+CIMI", "+CIMI", parser=parse_digits),
    Command("iccid", "AT+CCID", "+CCID", parser=parse_digits),
    Command("iccid_quectel", "AT+QCCID", "+QCCID", parser=parse_digits),
    Command("iccid_huawei", "AT^ICCID?", "^ICCID", parser=parse_digits),
    Command("iccid_zte", "AT+ZGETICCID", "+ZGETICCID", parser=parse_digits),
    Command("own_number", "AT+CNUM", "+CNUM", parser=parse_cnum),
    Command("operator", "AT+COPS?", "+COPS", timeout=10.0, parser=parse_fields),
    Command("registration", "AT+CREG?", "+CREG", parser=parse_fields),
    Command("signal", "AT+CSQ", "+CSQ", parser=parse_fields),
    Command("smsc", "AT+CSCA?", "+CSCA", parser=parse_fields),
    Command("more_messages", "AT+CMMS={mode}", "+CMMS"),
    Command("send", "AT+CMGS={length}", "+CMGS", timeout=10.0, parser=parse_int,
            expects_prompt=True),
    Command("read", "AT+CMGR={index}", "+CMGR", timeout=5.0, parser=parse_stored_pdus),
    Command("list", "AT+CMGL={status}", "+CMGL", timeout=20.0, parser=parse_stored_pdus),
    Command("delete", "AT+CMGD={index}", timeout=5.0),
    Command("acknowledge_new", "AT+CNMA", timeout=5.0),
    Command("ussd", 'AT+CUSD=1,"{code}",15', timeout=10.0),
    Command("ussd_cancel", "AT+CUSD=2", timeout=5.0),
)
"""Name → command. `send` has two timeouts: `Command.timeout` for the prompt, `SEND_RESULT_TIMEOUT`
after the PDU (the network round trip)."""

SEND_RESULT_TIMEOUT = 60.0
USSD_REPLY_TIMEOUT = 30.0


def csq_to_dbm(rssi: int | None) -> int | None:
    """TS 27.007 §8.5: 0 → -113 dBm, 1 → -111, 2..30 → -109..-53, 31 → -51 or more, 99 unknown."""
    if rssi is None or rssi == 99 or not 0 <= rssi <= 31:
        return None
    return -113 + 2 * rssi


def csq_to_bars(rssi: int | None) -> int:
    """Signal bars 0..4 as phones show them (CSQ <2 none, <10 marginal, <15 ok, <20 good, else 4)."""
    if rssi is None or rssi == 99 or rssi < 2:
        return 0
    for bars, limit in ((1, 10), (2, 15), (3, 20)):
        if rssi < limit:
            return bars
    return 4


REGISTRATION_STATES: dict[int, str] = {
    0: "not registered",
    1: "registered, home network",
    2: "searching",
    3: "registration denied",
    4: "unknown",
    5: "registered, roaming",
    6: "registered for SMS only, home network",
    7: "registered for SMS only, roaming",
}
"""TS 27.007 §7.2 ``+CREG`` <stat>."""

REGISTERED = frozenset({1, 5, 6, 7})


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[a-z_]+\}", template)
    return re.compile("^" + ".*?".join(re.escape(part) for part in parts) + "$", re.IGNORECASE)


_PATTERNS = [(_template_pattern(c.template), c) for c in COMMANDS.values() if c.template != "{setting}"]


def command_for_line(line: str) -> Command:
    """The table entry a raw line belongs to (``AT+CMGR=3`` → `COMMANDS["read"]`), or a bare
    `Command` without prefix for lines the table does not know."""
    for pattern, command in _PATTERNS:
        if pattern.match(line.strip()):
            return command
    return Command("raw", line.strip())
