"""Replay a recorded modem session (tests/transcripts/*.txt) into the sans-I/O core.

Format, one item a line (``#`` starts a comment):

    > AT+CMGS=23          a command line we write (prefix and prompt come from commands.py)
    >pdu 0011000B91...    the PDU we write after the prompt
    < \\r\\nOK\\r\\n          bytes the modem sent (Python escapes: \\r \\n \\x1a); each ``<`` line is
                          fed as its own chunk, so a transcript can split a reply anywhere
    = final OK            an expected event, in order; echo and noise are not listed
    = final +CMS ERROR: 500
    = info +CMGS: 12
    = prompt
    = urc +CMTI SM,3       name and comma-joined fields
    = urc +CMT ,23 pdu=07911326...
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

from at_commands.commands import command_for_line
from at_commands.core import NEED_DATA, AtConnection, Echo, FinalResult, InfoLine, Noise, Prompt, Urc

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"


def describe(event: object) -> str | None:
    """The ``= ...`` form of an event (None for echo and noise)."""
    if isinstance(event, FinalResult):
        return f"final {event.result}"
    if isinstance(event, InfoLine):
        return f"info {event.line}"
    if isinstance(event, Prompt):
        return "prompt"
    if isinstance(event, Urc):
        text = f"urc {event.name} {','.join(event.fields)}".rstrip()
        return f"{text} pdu={event.pdu}" if event.pdu else text
    if isinstance(event, (Echo, Noise)):
        return None
    raise AssertionError(f"unexpected event {event!r}")


@dataclass
class Replay:
    expected: list[str] = field(default_factory=list)
    actual: list[str] = field(default_factory=list)
    results: list[FinalResult] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)


def replay(path: Path, connection: AtConnection | None = None) -> Replay:
    core = connection or AtConnection()
    out = Replay()

    def drain() -> None:
        while (event := core.next_event()) is not NEED_DATA:
            if isinstance(event, FinalResult):
                out.results.append(event)
            text = describe(event)
            if text is not None:
                out.actual.append(text)

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(">pdu "):
            out.written.append(core.send_pdu(line[5:].strip()))
        elif line.startswith("> "):
            command = command_for_line(line[2:])
            out.written.append(core.send_command(
                line[2:], prefixes=(command.prefix,) if command.prefix else (),
                expects_prompt=command.expects_prompt))
        elif line.startswith("<"):
            core.receive_data(codecs.decode(line[2:], "unicode_escape").encode("latin-1"))
            drain()
        elif line.startswith("= "):
            out.expected.append(codecs.decode(line[2:].strip(), "unicode_escape"))
        else:
            raise ValueError(f"{path.name}:{number}: cannot read {line!r}")
    drain()
    return out
