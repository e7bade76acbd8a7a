"""What text may be queued: only text the dispatcher can send, so no queued message can fail
inside the dispatch loop (issue 12: one 299-part message once stopped every send behind it)."""

from __future__ import annotations

import re
from functools import lru_cache

from modempool.errors import UnsendableText
from modempool.spool.plain_text import refuse_nul

#: Parts one message may take unless `[pool] max_parts` says otherwise (the codec allows 255).
DEFAULT_MAX_PARTS = 10
#: The most parts a concatenated SMS can have (TS 23.040 9.2.3.24.1: an 8-bit count).
CODEC_MAX_PARTS = 255


_UNDECODED = re.compile("[\udc80-\udcff]")


def check_text(text: object, max_parts: int = DEFAULT_MAX_PARTS) -> int:
    """The number of parts `text` needs; UnsendableText (saying why) if it cannot be queued."""
    from pdu import PduError

    if not isinstance(text, str) or text == "":
        raise UnsendableText("message text is empty", code="text_empty")
    if not text.strip():
        raise UnsendableText("message text is only blank space", code="text_empty")
    refuse_nul("message text", text)
    undecoded = _UNDECODED.search(text)
    if undecoded:  # what Python makes of bytes that were not UTF-8 (argv, stdin, files)
        raise UnsendableText(
            f"message text is not valid UTF-8: byte 0x{ord(undecoded.group()) - 0xDC00:02x} at "
            f"character {undecoded.start()} (set the terminal or file to UTF-8)",
            code="text_not_utf8")
    try:
        parts = _parts(text)
    except PduError as exc:
        raise UnsendableText(f"message text cannot be sent: {exc}", code="text_unencodable") \
            from None
    if parts > max_parts:
        raise UnsendableText(
            f"message text of {len(text)} characters needs {parts} SMS parts; at most "
            f"{max_parts} are allowed ([pool] max_parts; the network's limit is {CODEC_MAX_PARTS})",
            code="text_too_long", params={"characters": len(text), "parts": parts,
                                          "max_parts": max_parts})
    return parts


@lru_cache(maxsize=256)
def _parts(text: str) -> int:
    """Parts of a text, remembered: a batch repeats one text 100,000 times."""
    from pdu import parts_needed

    return parts_needed(text).parts
