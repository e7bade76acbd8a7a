"""A sans-I/O AT protocol core: fed the modem's bytes, it yields typed events.

Like h11, it never touches a port. The driver calls `send_command()` / `send_pdu()` for the bytes to
write, `receive_data()` with what it read, and `next_event()` until `NEED_DATA`.

How a line is classified (whether echo is on or off):

0. a line without any ASCII letter or digit is line noise;
1. the PDU line that follows a ``+CMT``/``+CDS``/``+CBM`` URC belongs to that URC;
2. the echo of the pending command (or of its PDU) is `Echo`; a command sent with
   `require_echo` treats everything but URCs before its echo as noise (resynchronising);
3. a final result (``OK``, ``ERROR``, ``+CME ERROR: n``, ``+CMS ERROR: n``, ``NO CARRIER``...)
   ends the pending command; with no command pending it is noise;
4. a line whose name is one of the pending command's reply prefixes is its `InfoLine`
   (``+CREG: 0,1`` answers ``AT+CREG?`` even though ``+CREG`` is also a URC);
5. a line whose name is in the URC table is a `Urc`, command pending or not;
6. anything else is an `InfoLine` of the pending command, or `Noise` when none is pending
   (or when it looks like someone else's echoed command).

The ``> `` prompt has no line end: it is recognised only while the pending command waits for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from .errors import AtError, error_from_result
from .urc import URC_TABLE, UrcSpec, bare_pdu, fields_of, urc_name

CTRL_Z = b"\x1a"
ESC = b"\x1b"
MAX_LINE = 8192  # a longer line without end is garbage: dropped

_FINAL_WORDS = frozenset({"OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "CONNECT"})
_HEX_LINE = re.compile(r"^[0-9A-Fa-f]+$")
_LINE_END = re.compile(rb"[\r\n]+")  # a run of line ends ends one line: no empty lines to parse
_COMMAND_LINE = re.compile(r"^AT([+^&$%*#\\]|[A-Z]?\d*$)")  # an echoed command, ours or not


# ---- events --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Echo:
    """The modem repeating what we wrote (echo on)."""

    line: str


@dataclass(frozen=True, slots=True)
class InfoLine:
    """An information line of the pending command."""

    command: str
    line: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The ``> `` prompt: the modem waits for the PDU of `command`."""

    command: str


@dataclass(frozen=True, slots=True)
class FinalResult:
    """The end of `command`: `error` is None for ``OK``; `lines` are its information lines."""

    command: str
    result: str
    error: AtError | None = None
    lines: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited result code; `pdu` is the hex line that follows ``+CMT``/``+CDS``/``+CBM``."""

    name: str
    fields: tuple[str, ...]
    line: str
    spec: UrcSpec | None = field(default=None, compare=False)
    pdu: str | None = None


@dataclass(frozen=True, slots=True)
class Noise:
    """A line that belongs to nothing: boot noise, a late answer, garbage. Logged, never acted on."""

    line: str


class _NeedData(Enum):
    NEED_DATA = "need-data"


NEED_DATA = _NeedData.NEED_DATA
NeedData = _NeedData  # type of the sentinel, for annotations

Event = Echo | InfoLine | Prompt | FinalResult | Urc | Noise


class ProtocolError(Exception):
    """The caller used the core out of order (two commands at once, a PDU without prompt)."""


# ---- the core ------------------------------------------------------------------------------

@dataclass(slots=True)
class _Pending:
    line: str
    prefixes: tuple[str, ...]
    expects_prompt: bool
    awaiting_echo: bool = False
    prompted: bool = False
    pdu: str | None = None
    lines: list[str] = field(default_factory=list)


class AtConnection:
    """The state of one modem link: which command is pending, and what the bytes so far mean.

    `extra_urcs` adds names (vendor boot noise) to the URC table; `noise` lists whole lines to drop.
    """

    def __init__(self, *, extra_urcs: dict[str, UrcSpec] | None = None,
                 noise: tuple[str, ...] = ()) -> None:
        self._urcs = dict(URC_TABLE)
        self._urcs.update({k.upper(): v for k, v in (extra_urcs or {}).items()})
        self._noise = frozenset(n.strip().upper() for n in noise)
        self._buffer = bytearray()
        self._events: list[Event] = []
        self._pending: _Pending | None = None
        self._urc_waiting_pdu: Urc | None = None

    def add_vendor_lines(self, extra_urcs: dict[str, UrcSpec], noise: tuple[str, ...] = ()) -> None:
        """Learn a vendor's URC names and noise lines (once the profile is known)."""
        self._urcs.update({k.upper(): v for k, v in extra_urcs.items()})
        self._noise = self._noise | frozenset(n.strip().upper() for n in noise)

    # -- what to write --

    @property
    def pending_command(self) -> str | None:
        return self._pending.line if self._pending else None

    def send_command(self, line: str, *, prefixes: tuple[str, ...] = (),
                     expects_prompt: bool = False, require_echo: bool = False) -> bytes:
        """Start `line` (``AT+CMGS=23``): returns the bytes to write. One command at a time.

        `prefixes` are the names of its information lines (``+CMGS``), so that a line that could
        also be a URC is taken as its reply. With `require_echo` (echo must be on), anything but
        URCs before the echo of `line` is noise: a modem answers in order, so a late answer to
        an abandoned command comes before that echo. The driver resynchronises this way.
        """
        if self._pending is not None:
            raise ProtocolError(f"{self._pending.line!r} is still pending")
        if self._buffer.lstrip(b"\r\n").startswith(b">"):
            self._buffer.clear()  # a prompt from before this command cannot be its prompt
        self._pending = _Pending(line.strip(), tuple(p.upper().rstrip(":") for p in prefixes),
                                 expects_prompt, awaiting_echo=require_echo)
        return line.strip().encode("ascii") + b"\r"

    def send_pdu(self, hex_pdu: str) -> bytes:
        """The PDU for the prompt we got, ended with Ctrl-Z (TS 27.005 §3.5.1)."""
        pending = self._pending
        if pending is None or not pending.prompted or pending.pdu is not None:
            raise ProtocolError("no prompt is waiting for a PDU")
        pending.pdu = hex_pdu.strip().upper()
        return pending.pdu.encode("ascii") + CTRL_Z

    def abandon(self) -> bytes:
        """Forget the pending command (the driver timed out); returns ESC to cancel a prompt.

        A late answer to it then arrives with no command pending and becomes `Noise`; the driver
        must let the modem fall quiet before the next command (see driver `_resync`).
        """
        self._pending = None
        return ESC

    def assume_final(self) -> FinalResult | None:
        """End the pending command as if ``OK`` had come, with the information lines so far.

        For firmware known to leave some answers without a final result code (old Wavecom:
        ``+CPIN: READY`` and nothing after it): the driver calls this once the answer is
        complete and a grace period passed. None when no command is pending.
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        return FinalResult(pending.line, "", None, tuple(pending.lines))

    # -- what was read --

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the port, split anywhere."""
        self._buffer += data
        self._parse()

    def next_event(self) -> Event | _NeedData:
        """The next event, or `NEED_DATA` when the bytes so far say nothing more."""
        if self._events:
            return self._events.pop(0)
        return NEED_DATA

    def events(self) -> list[Event]:
        """All events available now (convenience for tests and the driver)."""
        out, self._events = self._events, []
        return out

    # -- framing --

    def _parse(self) -> None:
        while True:
            if self._take_prompt():
                continue
            match = _LINE_END.search(self._buffer)
            if match is None:
                if len(self._buffer) > MAX_LINE:
                    self._emit(Noise(self._buffer[:80].decode("latin-1")))
                    self._buffer.clear()
                break
            raw = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            self._line(_clean(raw))
        # a URC whose PDU line cannot be a line any more (buffer holds a non-hex start) is kept
        # waiting: the PDU line always follows at once.

    def _take_prompt(self) -> bool:
        pending = self._pending
        if pending is None or not pending.expects_prompt or pending.prompted \
                or pending.awaiting_echo:
            return False
        start = 0
        while start < len(self._buffer) and self._buffer[start] in b"\r\n":
            start += 1
        if start >= len(self._buffer) or self._buffer[start] != ord(">"):
            return False
        end = start + 1
        if end < len(self._buffer) and self._buffer[end] == ord(" "):
            end += 1
        del self._buffer[:end]
        pending.prompted = True
        self._flush_urc()
        self._emit(Prompt(pending.line))
        return True

    def _line(self, line: str) -> None:
        if not line:
            return
        if not any(ch.isascii() and ch.isalnum() for ch in line):
            self._emit(Noise(line))  # line noise: no letter or digit to mean anything
            return
        if self._urc_waiting_pdu is not None:
            waiting, self._urc_waiting_pdu = self._urc_waiting_pdu, None
            bare = bare_pdu(line)  # some modems quote the PDU line or pad it
            if _HEX_LINE.match(bare):
                self._emit(Urc(waiting.name, waiting.fields, waiting.line, waiting.spec, bare.upper()))
                return
            self._emit(waiting)  # the PDU line is missing: deliver what we have
        upper = line.upper()
        pending = self._pending
        if pending is not None and _is_echo(upper, pending):
            pending.awaiting_echo = False
            self._emit(Echo(line))
            return
        if pending is not None and pending.awaiting_echo:
            pending = None  # before our echo: the tail of an older command
        if is_final_result(upper):
            if pending is None:
                self._emit(Noise(line))
                return
            self._pending = None
            self._emit(FinalResult(pending.line, line, error_from_result(line), tuple(pending.lines)))
            return
        name = urc_name(line)
        if pending is not None and name in pending.prefixes:
            self._info(pending, line)
            return
        spec = self._urcs.get(name) or self._urcs.get(upper)
        if spec is not None:
            urc = Urc(name, fields_of(line), line, spec)
            if spec.pdu_follows:
                self._urc_waiting_pdu = urc
            else:
                self._emit(urc)
            return
        if upper in self._noise or pending is None or _COMMAND_LINE.match(upper):
            self._emit(Noise(line))
            return
        self._info(pending, line)

    def _info(self, pending: _Pending, line: str) -> None:
        pending.lines.append(line)
        self._emit(InfoLine(pending.line, line))

    def _flush_urc(self) -> None:
        if self._urc_waiting_pdu is not None:
            self._emit(self._urc_waiting_pdu)
            self._urc_waiting_pdu = None

    def _emit(self, event: Event) -> None:
        self._events.append(event)


def _clean(raw: bytes) -> str:
    """Bytes of one line as text: control characters (Ctrl-Z, NUL, ESC) dropped, spaces trimmed."""
    text = raw.decode("latin-1")
    if text.isprintable():  # the usual line: nothing to drop (a character at a time costs)
        return text.strip()
    return "".join(ch for ch in text if ch >= " " or ch == "\t").strip()


def is_final_result(upper: str) -> bool:
    """Whether an upper-cased line is a final result code (27.007 / 27.005)."""
    return (upper in _FINAL_WORDS or upper.startswith("+CME ERROR:") or upper.startswith("+CMS ERROR:")
            or upper.startswith("CONNECT "))


def _is_echo(upper: str, pending: _Pending) -> bool:
    if upper.lstrip("> ") == pending.line.upper():  # a stale prompt may sit before the echo
        return True
    if pending.pdu is not None:
        return upper.lstrip("> ").replace(" ", "") == pending.pdu
    return False
