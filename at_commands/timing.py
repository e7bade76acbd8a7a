"""How long one modem is waited for, as its user set it: the modem bank's own knowledge, laid
over the vendor profile's timeouts (`profiles.py`) and the command table's (`commands.py`).

Real modems differ: an old serial modem or one behind a busy USB hub answers in a second or
more where a healthy one answers in milliseconds. The channel learns a slow modem's pace by
itself (`pace.py`), but only after a first wait ran out; a user who knows the modem is slow
says so here, and a test that waits for a timeout makes it a short one.

    timing = Timing(answer_wait=3.0, timeouts={"list": 60.0})
    modem = Modem("/dev/ttyUSB0", name="m1", timing=timing)
"""

from __future__ import annotations

import math

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .profiles import ModemProfile

#: How much longer each try for a modem's attention waits, in `Timing.answer_wait`s.
ATTENTION_TRIES = (1.0, 3.0, 10.0)


@dataclass(frozen=True, slots=True)
class Timing:
    """One modem's waits.

    - `answer_wait`: seconds a modem is first given to answer ``AT`` when it is opened (the
      next tries wait 3 and 10 times as long, `ATTENTION_TRIES`); resynchronising after a
      command went unanswered waits 1 to 3 times it; a modem found slow is given 4 times its
      usual answer time plus this; a ready modem that fell silent is asked ``AT`` this often.
    - `timeouts`: seconds per command, by `commands.COMMANDS` name (``send`` is the wait for
      the ``> `` prompt; ``send_result`` the wait after the PDU), over the vendor profile's.
    """

    answer_wait: float = 1.0
    timeouts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not _a_wait(self.answer_wait):
            raise ValueError(f"answer_wait must be a finite number of seconds more than 0, "
                             f"got {self.answer_wait}")
        bad = [name for name, seconds in self.timeouts.items() if not _a_wait(seconds)]
        if bad:
            raise ValueError(f"timeouts must be finite numbers of seconds more than 0: "
                             f"{', '.join(bad)}")
        object.__setattr__(self, "timeouts", MappingProxyType(dict(self.timeouts)))

    def timeout(self, command: str, profile: ModemProfile, default: float) -> float:
        """The wait for `command`: the user's, else the profile's, else `default` (the table's)."""
        return self.timeouts.get(command, profile.timeout(command, default))

    def attention_waits(self) -> tuple[float, ...]:
        """The waits of the tries for a freshly opened modem's ``AT``."""
        return tuple(self.answer_wait * factor for factor in ATTENTION_TRIES)

    def resync_wait(self, timeout: float) -> float:
        """The wait of each command that resynchronises after `timeout` ran out once."""
        return min(max(timeout, self.answer_wait), 3 * self.answer_wait)


__all__ = ["ATTENTION_TRIES", "Timing"]


def _a_wait(seconds: float) -> bool:
    """More than 0 and finite: every wait of the driver ends (nan and inf never would)."""
    return math.isfinite(seconds) and seconds > 0
