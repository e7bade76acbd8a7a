"""Number normalisation for bulk enqueue: `numbers.normalise` with a fast path.

Enqueueing 100,000 messages spends most of its time in phonenumbers' parser. Plain digit
strings that are already a valid number as they stand skip the parser; every other input
(spaces, national or international prefixes, invalid numbers) goes to `normalise`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from collections.abc import Iterable

from modempool.errors import InvalidNumber, InvalidRow
from modempool.numbers import normalise
from modempool.spool.plain_text import without_nul


def normalise_all(numbers: Iterable[str], region: str, *, remember: bool = True) -> list[str]:
    """Every number of a batch in E.164, or InvalidNumber about the first bad one (InvalidRow,
    naming its row from 1, when the batch has more than one): a caller checks all before
    storing any. `remember=False` leaves the numbers out of the cache (a streamed batch: its
    100,000 numbers would hold some 20 MB there, and are not asked again)."""
    numbers = list(numbers)
    normalise_one = _normalise if remember else _normalise.__wrapped__
    e164s = []
    for index, number in enumerate(numbers):
        try:
            e164s.append(normalise_one(str(number), region))
        except InvalidNumber as exc:
            if len(numbers) == 1:
                raise
            raise InvalidRow(index + 1, exc) from None
    return e164s


def sender_number(sender: str, region: str) -> str:
    """A received SMS's sender or a report's recipient: E.164 when it is a phone number;
    short codes and names stay as given (a name's NULs replaced, as the text's: `plain_text`)."""
    try:
        return normalise(sender, region)
    except InvalidNumber:
        return without_nul(sender.strip())


@lru_cache(maxsize=65536)
def _normalise(number: str, region: str) -> str:
    """`numbers.normalise`, with a shortcut for plain digit strings (bulk enqueue speed).

    The shortcut only answers when the digits are already a valid number as they stand
    (no national or international prefix to strip); anything else goes to `normalise`,
    which gives the authoritative result or the error.
    """
    quick = _quick_e164(number, region)
    return quick if quick is not None else normalise(number, region)


def _quick_e164(number: str, region: str) -> str | None:
    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

    if number.startswith("+"):
        digits = number[1:]
        if not digits.isdigit() or digits.startswith("0") or not 6 <= len(digits) <= 17:
            return None
        code = next((int(digits[:n]) for n in (1, 2, 3) if int(digits[:n]) in
                     COUNTRY_CODE_TO_REGION_CODE), None)
        if code is None:
            return None
        national = digits[len(str(code)):]
    else:
        if not number.isdigit() or not 6 <= len(number) <= 17:
            return None
        metadata = PhoneMetadata.metadata_for_region(region.upper())
        if metadata is None:
            return None
        code, national = metadata.country_code, number
        prefixes = [metadata.national_prefix, metadata.national_prefix_for_parsing,
                    metadata.international_prefix, str(code)]
        if any(p and re.match(p, national) for p in prefixes if p):
            return None
    if national.startswith("0"):
        return None
    parsed = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return f"+{code}{national}" if phonenumbers.is_valid_number(parsed) else None
