"""The AT vocabulary the simulator's interpreter and command tables share.

Command forms, failures (`+CME ERROR` / `+CMS ERROR` / `ERROR`), what a handler answers, the
command table, and how a command line after `AT` splits into commands (V.250 5.2).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.modem import VirtualModem


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes to write after `delay` seconds; `action` runs just before they are written."""

    data: bytes
    delay: float = 0.0
    urc: bool = False  # unsolicited: written at once, even while a reply is being delayed
    action: Callable[[], None] | None = None


class Form(enum.Enum):
    EXEC = ""  # AT+CGMI
    READ = "?"  # AT+CMGF?
    TEST = "=?"  # AT+CMGF=?
    SET = "="  # AT+CMGF=0


class AtFailure(Exception):
    """A command failed: `+CME ERROR`, `+CMS ERROR` or plain `ERROR` (family None)."""

    def __init__(self, family: str | None = None, code: int = 0) -> None:
        super().__init__(family, code)
        self.family, self.code = family, code


def cme(code: int) -> AtFailure:
    return AtFailure("CME", code)


def cms(code: int) -> AtFailure:
    return AtFailure("CMS", code)


ERROR_TEXT = {
    ("CME", 3): "operation not allowed", ("CME", 4): "operation not supported",
    ("CME", 10): "SIM not inserted", ("CME", 11): "SIM PIN required",
    ("CME", 12): "SIM PUK required", ("CME", 13): "SIM failure", ("CME", 16): "incorrect password",
    ("CME", 30): "no network service", ("CME", 50): "incorrect parameters",
    ("CME", 100): "unknown",
    ("CMS", 21): "short message transfer rejected", ("CMS", 38): "network out of order",
    ("CMS", 42): "congestion", ("CMS", 302): "operation not allowed",
    ("CMS", 303): "operation not supported", ("CMS", 304): "invalid PDU mode parameter",
    ("CMS", 305): "invalid text mode parameter", ("CMS", 310): "SIM not inserted",
    ("CMS", 311): "SIM PIN required", ("CMS", 316): "SIM PUK required",
    ("CMS", 321): "invalid memory index", ("CMS", 322): "memory full",
    ("CMS", 331): "no network service", ("CMS", 500): "unknown error",
}


@dataclass(slots=True)
class Reply:
    """What a command handler returns when plain information lines are not enough."""

    lines: list[str] = field(default_factory=list)
    prompt: Callable[[bytes], Reply] | None = None  # text entry follows; called with it
    text_entry: bool = False  # text mode: CR inside the entry gives another prompt
    delay: float = 0.0  # extra seconds before the final result (e.g. a send)
    final: bool = True  # False: no final result at all (a hung modem)
    omit_result: bool = False  # the information lines without OK after them (a firmware quirk)
    action: Callable[[], None] | None = None  # runs when the result is written
    then: list[str] = field(default_factory=list)  # unsolicited lines after the result
    then_delay: float = 0.0


Handler = Callable[["VirtualModem", Form, list[str]], "Reply | list[str] | None"]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: Handler
    sim: str | None = None  # "cme" or "cms": which error family reports a missing/locked SIM


class CommandTable:
    """Command name -> handler, filled with the @table.command("+CMGF") decorator."""

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}

    def command(self, *names: str, sim: str | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for name in names:
                self.commands[name.upper()] = Command(name.upper(), handler, sim)
            return handler
        return register


_EXTENDED = re.compile(r"([+^$%*#][A-Z0-9_]+)(=\?|\?|=)?", re.IGNORECASE)
_BASIC = re.compile(r"(&?[A-Z])(\d*)(\?|=\d*)?", re.IGNORECASE)


def split_args(text: str) -> list[str]:
    """`1,"SM",,2` -> ["1", "SM", "", "2"]: commas outside quotes separate, quotes dropped."""
    args, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    args.append("".join(current).strip())
    return args


def parse_command_line(body: str) -> list[tuple[str, Form, str]]:
    """Split what follows `AT` into (name, form, argument text) triples."""
    commands: list[tuple[str, Form, str]] = []
    rest = body
    while rest:
        rest = rest.lstrip(" ;")
        if not rest:
            break
        match = _EXTENDED.match(rest)
        if match:
            name, suffix = match.group(1).upper(), match.group(2) or ""
            rest = rest[match.end():]
            arguments = ""
            if suffix == "=":
                end, quoted = 0, False
                while end < len(rest) and (quoted or rest[end] != ";"):
                    quoted ^= rest[end] == '"'
                    end += 1
                arguments, rest = rest[:end], rest[end:]
            commands.append((name, {"": Form.EXEC, "?": Form.READ, "=?": Form.TEST,
                                    "=": Form.SET}[suffix], arguments))
            continue
        if rest[0] in "Dd":  # dial consumes the rest of the line
            commands.append(("D", Form.SET, rest[1:]))
            break
        match = _BASIC.match(rest)
        if not match:
            raise AtFailure()
        name, number, suffix = match.group(1).upper(), match.group(2), match.group(3) or ""
        rest = rest[match.end():]
        if name == "S":
            commands.append((f"S{number}", Form.READ if suffix == "?" else Form.SET, suffix[1:]))
        else:
            commands.append((name, Form.SET, number))
    return commands
