"""Phone number validation and normalisation to E.164, with the phonenumbers library."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from modempool.errors import InvalidNumber

DEFAULT_REGION = "CN"
_NUMBER_START = re.compile(r"[+＋(（\d]")  # \d: full-width digits too


@lru_cache(maxsize=8192)  # the same numbers come back (reports, replies, campaigns re-run)
def normalise(number: str, region: str = DEFAULT_REGION) -> str:
    """Return `number` in E.164 (`+8613800138000`), or raise InvalidNumber saying why.

    National numbers are read in `region` (CN by default), so `13800138000` and
    `+86 138-0013-8000` give the same result.
    """
    text = str(number).strip()
    if not text:
        raise InvalidNumber("empty phone number", code="number_empty")
    if not _NUMBER_START.match(text):  # phonenumbers skips a leading '-' or letters silently
        raise InvalidNumber(f"{number!r} is not a phone number: it must begin with a digit, "
                            "'+' or '('", code="number_bad_start", params={"number": str(number)})
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"{number!r} is not a phone number: {exc}", code="number_unreadable",
                            params={"number": str(number)}) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber(
            f"{number!r} is not a valid number"
            + ("" if text.startswith("+") else f" in region {region}"),
            params={"number": str(number), "region": "" if text.startswith("+") else region})
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=8192)  # asked for each message by carrier affinity and carrier limits
def carrier_of(e164: str, lang: str = "en") -> str:
    """The carrier a number was allocated to (`China Mobile`), or '' when unknown."""
    from phonenumbers import carrier

    try:
        return carrier.name_for_number(phonenumbers.parse(e164), lang)
    except phonenumbers.NumberParseException:
        return ""
