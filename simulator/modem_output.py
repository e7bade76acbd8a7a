"""What a simulated modem says: unsolicited codes, replies with their delays, final results.

A mixin of `VirtualModem` (`simulator/modem.py`, which reads and runs commands). Every output goes
to `self.output(Output)`; `modem_port.py` writes it to the pseudo-terminal in order, honouring
its delay, except unsolicited codes, which go out at once. URCs a command causes are held until
its final result is written (a real modem finishes its reply first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from simulator.at_syntax import ERROR_TEXT, AtFailure, Output
from simulator.faults import Fault

if TYPE_CHECKING:
    from simulator.modem import VirtualModem


class ModemOutput:
    def urc(self: VirtualModem, line: str, delay: float = 0.0) -> None:
        if not self.connected or self.hung:
            return
        if self._held_urcs is not None:
            self._held_urcs.append(line)
            return
        self.output(Output(f"\r\n{line}\r\n".encode("latin-1", "replace"), delay, urc=True))

    def _hold_urcs(self: VirtualModem) -> None:
        self._held_urcs = [] if self._held_urcs is None else self._held_urcs

    def _release_urcs(self: VirtualModem) -> None:
        """Queue the URCs held during a command behind its final result."""
        held, self._held_urcs = self._held_urcs or [], None
        if self.connected and not self.hung:
            for line in held:
                self._say(f"\r\n{line}\r\n".encode("latin-1", "replace"))

    def _after_result(self: VirtualModem,
                      action: Callable[[], None] | None) -> Callable[[], None] | None:
        """`action` (run as the result is written) with its URCs following the result."""
        if action is None:
            return None

        def run() -> None:
            self._hold_urcs()
            try:
                action()
            finally:
                self._release_urcs()
        return run

    def _say(self: VirtualModem, data: bytes, delay: float = 0.0,
             action: Callable[[], None] | None = None) -> None:
        self.output(Output(data, delay, action=action))

    def _noise(self: VirtualModem) -> bytes:
        if Fault.GARBAGE not in self.faults:
            return b""
        length = int(self.faults[Fault.GARBAGE]["length"])
        return bytes(self.rng.choice(b"\x00\xff\xfe~#@\x7f\x80\x13") for _ in range(length))

    def _result(self: VirtualModem, lines: list[str], final: str, delay: float,
                action: Callable[[], None] | None = None) -> None:
        if self.settings.verbose:
            # V.250: information text framed by one CR LF before and after; the lines of one
            # reply (a +CMGL header and its PDU) are separated by a single CR LF.
            info = "\r\n" + "\r\n".join(lines) + "\r\n" if lines else ""
            body = info + (f"\r\n{final}\r\n" if final else "")
        else:
            numeric = {"OK": "0", "ERROR": "4"}.get(final, final)
            body = "".join(f"{line}\r\n" for line in lines) + (f"{numeric}\r" if final else "")
        self._say(self._noise() + body.encode("latin-1", "replace"), delay, action)

    def error_text(self: VirtualModem, failure: AtFailure) -> str:
        if failure.family is None or (failure.family == "CME" and self.settings.cmee == 0):
            return "ERROR"
        if self.settings.cmee == 2:
            return f"+{failure.family} ERROR: " + ERROR_TEXT.get(
                (failure.family, failure.code), str(failure.code))
        return f"+{failure.family} ERROR: {failure.code}"
