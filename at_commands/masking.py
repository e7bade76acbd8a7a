"""What of an AT command line may go to a log: PINs and passwords never do (``AT+CPIN=``,
``AT+CPIN2=``, the password of ``AT+CLCK=``, both of ``AT+CPWD=``)."""

from __future__ import annotations

import re

_SECRET = re.compile(r'(\+CPIN2?=|\+CLCK=[^,]*,[^,]*,|\+CPWD=)(.*)', re.IGNORECASE)


def mask_secrets(line: str) -> str:
    """A line fit for a log: PINs and passwords replaced by ****."""
    return _SECRET.sub(r"\1****", line)


__all__ = ["mask_secrets"]
