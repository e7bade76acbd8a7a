"""How long to wait for one modem's answer: its pace, learned from the answers it gave, and the
grace after which an answer a firmware leaves without a final result is taken as complete.

Old serial modems, busy USB hubs and modems still registering answer after a second or more;
waits grow with the learned pace, so a slow modem is never taken for a silent one. Both parts
belong to a `Channel` (`channel.pace`, the channel's grace timer) and do no I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable


class Pace:
    """How fast one modem usually answers (`response_time`, None until it answered once)."""

    def __init__(self, log: logging.Logger, *, margin: float = 1.0) -> None:
        self.response_time: float | None = None
        self._log = log
        self._margin = margin   # seconds added to a slow modem's waits (`Timing.answer_wait`)

    def learn(self, seconds: float, *, late: bool = False) -> None:
        """Keep the modem's usual response time: the slowest of the recent answers counts most."""
        seconds = max(0.0, seconds)
        known = self.response_time
        self.response_time = seconds if known is None or seconds > known else \
            known * 0.8 + seconds * 0.2
        if late:
            self._log.info("answers slowly (%.1f s): waiting longer for it", seconds)

    def patience(self, timeout: float) -> float:
        """`timeout`, lengthened for a modem known to answer slowly (never shortened)."""
        if self.response_time is None:
            return timeout
        return max(timeout, 4 * self.response_time + self._margin)


class AnswerGrace:
    """The timer for an answer whose final result this modem may never send (profile
    ``unterminated_replies``): `command` is the line that may end so; each information line
    for it restarts the timer, and `on_end` runs when nothing more came in time."""

    def __init__(self, on_end: Callable[[], None]) -> None:
        self.command: str | None = None
        self._on_end = on_end
        self._timer: asyncio.TimerHandle | None = None

    def restart(self, seconds: float) -> None:
        """(Re)start the wait: the answer counts as complete `seconds` from now."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._end)

    def stop(self) -> None:
        """The command is over: no grace for it any more."""
        self.command = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self) -> None:
        self._timer = None
        self._on_end()


__all__ = ["AnswerGrace", "Pace"]
