"""Choosing how a text is coded: GSM-7 (default or national tables), UCS2, or 8-bit data."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import PduError


class Alphabet(enum.Enum):
    GSM7 = "gsm7"
    EIGHT_BIT = "8bit"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class Encoding:
    """An alphabet plus, for GSM-7, the national language tables in use (0 = the default table)."""

    alphabet: Alphabet
    locking: int = 0  # TS 23.038 6.2.1.2.4 national language identifier of the locking-shift table
    single: int = 0  # ... of the single-shift table

    @property
    def national(self) -> bool:
        return bool(self.locking or self.single)


GSM7_DEFAULT = Encoding(Alphabet.GSM7)
UCS2 = Encoding(Alphabet.UCS2)
EIGHT_BIT = Encoding(Alphabet.EIGHT_BIT)

_NAMES = {
    "gsm7": Alphabet.GSM7, "gsm": Alphabet.GSM7, "7bit": Alphabet.GSM7, "gsm-7": Alphabet.GSM7,
    "ucs2": Alphabet.UCS2, "ucs-2": Alphabet.UCS2, "utf16": Alphabet.UCS2, "utf-16": Alphabet.UCS2,
    "8bit": Alphabet.EIGHT_BIT, "8-bit": Alphabet.EIGHT_BIT, "data": Alphabet.EIGHT_BIT,
    "binary": Alphabet.EIGHT_BIT, "auto": None,
}


def coerce_alphabet(value: Alphabet | str | None) -> Alphabet | None:
    """Accept an Alphabet, its name/value ("gsm7", "ucs2", "8bit", "auto") or None (= choose)."""
    if value is None or isinstance(value, Alphabet):
        return value
    try:
        return _NAMES[str(value).strip().lower()]
    except KeyError:
        raise PduError(f"unknown alphabet {value!r}: use gsm7, ucs2, 8bit or auto") from None
