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
