"""Errors of the pool layer: each says what is wrong in words a user can act on."""

from __future__ import annotations


class PoolError(Exception):
    """Base class for errors raised by the modempool library."""


class InvalidNumber(PoolError):
    """A phone number that cannot be normalised to E.164."""


class ConfigError(PoolError):
    """A configuration file that cannot be used; the message names file, line and key."""


class NotFound(PoolError):
    """A message, contact, group or campaign id that does not exist."""


class Refused(PoolError):
    """A send the rules forbid (blacklist, opt-out): `.number` and `.reason` say which and why.

    Raised before anything is stored: when one recipient of a send is refused, none is queued.
    """

    def __init__(self, number: str, reason: str) -> None:
        self.number, self.reason = number, reason
        super().__init__(f"{number}: {reason}")


class Blacklisted(Refused):
    """The number is on the blacklist: it never gets any message."""


class OptedOut(Refused):
    """The number opted out (退订) and `[optout] block_direct` is set."""


class RefusedMany(PoolError):
    """Several recipients refused at once; `.refusals` holds each `Refused`."""

    def __init__(self, refusals: list[Refused]) -> None:
        self.refusals = refusals
        super().__init__("; ".join(str(r) for r in refusals))


class UnknownSim(PoolError):
    """A SIM name that no `[[modem]]` of the configuration has."""


class UnsendableText(PoolError):
    """Message text that cannot be sent: empty, blank, or longer than the parts allowed."""
