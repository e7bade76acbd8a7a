"""The codec's one error type."""

from __future__ import annotations


class PduError(ValueError):
    """A PDU (or a message to encode) is malformed; says what is wrong and where.

    ``offset`` is the octet offset in the PDU (counting the SMSC part when present) or None.
    """

    def __init__(self, what: str, *, offset: int | None = None) -> None:
        self.what = what
        self.offset = offset
        super().__init__(what if offset is None else f"{what} (at octet {offset})")
