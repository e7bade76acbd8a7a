"""A database URL's password kept out of every message and log line (`masked`, and
`one_line` for a driver's message of several lines).

A password reaches text three ways: the URL itself (`postgresql://pool:PW@host/db`, a config
value or `--to` echoed in an error), a conninfo string (`host=h password=PW`), and libpq's own
error text, which quotes the part of a URL it could not parse (`invalid percent-encoded token:
"PW%zz"`, or the whole URI). The first two are found by their shape; the third only by knowing
the password, so `masked(text, url)` also blots out whatever the URL's password could be.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

#: scheme://user:PASSWORD@ (up to the last @ of the word: a password may hold an unescaped @)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):[^\s'\"]*@")
#: password=PASSWORD in a conninfo string ('quoted' or up to a blank) or a URL's query
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\"]+)", re.IGNORECASE)


def masked(text: str, *urls: str | None) -> str:
    """`text` with the password of any URL or conninfo in it, and anything that could be the
    password of each of `urls` (raw or percent-decoded), replaced by ***."""
    for secret in sorted({s for url in urls if url for s in _passwords(url)}, key=len,
                         reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    return _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", text)


def one_line(text: str | BaseException, *urls: str | None) -> str:
    """`text` (a driver's message: libpq's runs over several lines and repeats itself) as one
    line, each of its lines once, joined by "; ", and `masked` (with `urls`); an exception's
    message, or its class's name when it has none. Every database error or driver log line
    shown to a person or written to a log goes through here."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    folded = masked("; ".join(dict.fromkeys(lines)), *urls)
    return folded or (type(text).__name__ if isinstance(text, BaseException) else "")


def _passwords(url: str) -> set[str]:
    """What the password of `url` may be, however badly it is written: the user part's text
    after its first colon, up to the first and up to the last @ (libpq quotes either), and
    the value of each password= keyword; each also percent-decoded."""
    found: set[str] = set()
    _, scheme_mark, rest = url.partition("://")
    if scheme_mark:
        for end in (rest.find("@"), rest.rfind("@")):
            if end > 0 and ":" in rest[:end]:
                found.add(rest[:end].split(":", 1)[1])
    for match in _KEYWORD_PASSWORD.finditer(url):
        found.add(match.group(2).strip("'"))
    found |= {unquote(s) for s in found}
    return {s for s in found if s and s != MASK}
