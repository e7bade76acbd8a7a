"""Errors of the pool layer: each says what is wrong in words a user can act on.

The message is English (the library, the CLI and the HTTP API show it as it is). An error a
person meets in the web console also has a stable `code` and the `params` its message is made
of, so a front end in another language can word it again from its own catalog
(modempool/web/console/errors.py); a code never changes meaning once given.
"""

from __future__ import annotations

from typing import Any


class PoolError(Exception):
    """Base class for errors raised by the modempool library: `str(error)` in English,
    `code` (e.g. "number_invalid") and `params` ({"number": "12345"}) for translations."""

    code = "error"

    def __init__(self, message: str = "", *, code: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.params: dict[str, Any] = dict(params or {})


class SpoolFailure(PoolError):
    """The spool's database failed a call (a role's missing right, the server away): nothing
    about what was asked. Code that reads a PoolError as "the rules refused this" (an
    auto-reply, a forward, a campaign's row) lets these pass, to be logged as what they are
    and tried again, never recorded as a refusal."""


class InvalidNumber(PoolError):
    """A phone number that cannot be normalised to E.164."""

    code = "number_invalid"


class RowError(PoolError):
    """A batch's row that cannot be queued: `row` (from 1) says which, `problem` is the error
    about the row alone, so a front end can place it in its own words ("argument 2", 第 2 行)
    without taking the English message apart. Its `code` is the problem's; `params` has the
    row too. `RowError.of(row, problem)` gives the kind that fits the problem."""

    def __init__(self, row: int, problem: PoolError) -> None:
        self.row, self.problem = row, problem
        super().__init__(f"row {row}: {problem}", code=problem.code,
                         params={**problem.params, "row": row})

    @staticmethod
    def of(row: int, problem: PoolError) -> RowError:
        """`problem` placed in `row`: an InvalidRow for a bad number (still an InvalidNumber)."""
        if isinstance(problem, RowError):
            return problem
        return InvalidRow(row, problem) if isinstance(problem, InvalidNumber) else RowError(row, problem)


class InvalidRow(RowError, InvalidNumber):
    """A bad number among a batch's (a `RowError` whose `problem` is an InvalidNumber)."""


class ConfigError(PoolError):
    """A configuration file that cannot be used; the message names file, line and key."""


class NotFound(PoolError):
    """A message, contact, group or campaign id that does not exist."""

    code = "not_found"


class Refused(PoolError):
    """A send the rules forbid (blacklist, opt-out): `.number` and `.reason` say which and why.

    Raised before anything is stored: when one recipient of a send is refused, none is queued.
    """

    code = "refused"

    def __init__(self, number: str, reason: str) -> None:
        self.number, self.reason = number, reason
        super().__init__(f"{number}: {reason}", params={"number": number})


class Blacklisted(Refused):
    """The number is on the blacklist: it never gets any message."""

    code = "blacklisted"


class OptedOut(Refused):
    """The number opted out (退订) and `[optout] block_direct` is set."""

    code = "opted_out"


class RefusedMany(PoolError):
    """Several recipients refused at once; `.refusals` holds each `Refused`."""

    code = "refused_many"

    def __init__(self, refusals: list[Refused]) -> None:
        self.refusals = refusals
        super().__init__("; ".join(str(r) for r in refusals), params={"count": len(refusals)})


class UnknownSim(PoolError):
    """A SIM name that no `[[modem]]` of the configuration has."""

    code = "unknown_sim"


class InvalidText(PoolError):
    """Text a field cannot hold (the NUL character U+0000): `params["field"]` names the field."""

    code = "text_invalid"


class UnsendableText(PoolError):
    """Message text that cannot be sent: empty, blank, or longer than the parts allowed."""
