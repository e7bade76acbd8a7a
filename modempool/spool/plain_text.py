"""Text the spool can keep on both engines: PostgreSQL's text cannot hold U+0000 (NUL), so
no text the spool stores may contain it, on SQLite either (a spool migrates between them).

What a user types with a NUL is refused, naming the field; what the network hands us (an SMS
whose UCS-2 text decodes to U+0000) cannot be refused, so its NULs become U+FFFD."""

from __future__ import annotations

from typing import Any

from modempool.errors import InvalidText

NUL = "\x00"
#: What a NUL in received text becomes: the Unicode replacement character.
REPLACEMENT = "\ufffd"


def refuse_nul(field: str, *values: Any) -> None:
    """InvalidText naming `field` if any of `values` (strings, or lists and dicts of them)
    contains U+0000."""
    for value in values:
        if _has_nul(value):
            raise InvalidText(
                f"{field} contains the NUL character (U+0000), which cannot be stored; remove it",
                code="text_nul", params={"field": field})


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def without_nul(text: str) -> str:
    """Received text as the spool keeps it: each U+0000 replaced by U+FFFD."""
    return text.replace(NUL, REPLACEMENT) if NUL in text else text
