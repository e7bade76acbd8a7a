"""The user data header and the information elements we act on (TS 23.040 9.2.3.24)."""

from __future__ import annotations

from .errors import PduError
from .national import LOCKING, SINGLE

IEI_CONCAT8 = 0x00  # 9.2.3.24.1
IEI_PORTS8 = 0x04  # 9.2.3.24.3
IEI_PORTS16 = 0x05  # 9.2.3.24.4
IEI_CONCAT16 = 0x08  # 9.2.3.24.8
IEI_SINGLE_SHIFT = 0x24  # 9.2.3.24.15
IEI_LOCKING_SHIFT = 0x25  # 9.2.3.24.16

Elements = tuple[tuple[int, bytes], ...]


def encode_udh(ies: list[tuple[int, bytes]]) -> bytes:
    """UDHL then each element (IEI, length, data); empty when there are no elements."""
    if not ies:
        return b""
    body = b"".join(bytes((iei, len(data))) + data for iei, data in ies)
    return bytes((len(body),)) + body


def decode_udh(body: bytes, offset: int) -> Elements:
    """The elements of a header body (after UDHL); PduError if an element overruns it."""
    ies = []
    i, n = 0, len(body)
    while i < n:
        if i + 2 > n:
            raise PduError("user data header ends inside an information element", offset=offset + i)
        iei, length = body[i], body[i + 1]
        if i + 2 + length > n:
            raise PduError(f"UDH element 0x{iei:02X} claims {length} octets but only {n - i - 2} remain",
                           offset=offset + i)
        ies.append((iei, bytes(body[i + 2:i + 2 + length])))
        i += 2 + length
    return tuple(ies)


def concat_of(udh: Elements) -> tuple[int, int, int, bool] | None:
    """(reference, total, seq, ref16); an element with seq 0 or seq > total is ignored (9.2.3.24.1)."""
    found = None
    for iei, v in udh:
        if iei == IEI_CONCAT8 and len(v) == 3 and 0 < v[2] <= v[1]:
            found = (v[0], v[1], v[2], False)
        elif iei == IEI_CONCAT16 and len(v) == 4 and 0 < v[3] <= v[2]:
            found = ((v[0] << 8) | v[1], v[2], v[3], True)
    return found


def ports_of(udh: Elements) -> tuple[int, int] | None:
    """(destination, originator) application port addressing, 8- or 16-bit."""
    found = None
    for iei, v in udh:
        if iei == IEI_PORTS8 and len(v) == 2:
            found = (v[0], v[1])
        elif iei == IEI_PORTS16 and len(v) == 4:
            found = ((v[0] << 8) | v[1], (v[2] << 8) | v[3])
    return found


def national_of(udh: Elements) -> tuple[int, int]:
    """(locking, single-shift) national language ids; unknown languages fall back to 0 (default)."""
    locking = single = 0
    for iei, v in udh:
        if iei == IEI_LOCKING_SHIFT and len(v) == 1 and v[0] in LOCKING:
            locking = v[0]
        elif iei == IEI_SINGLE_SHIFT and len(v) == 1 and v[0] in SINGLE:
            single = v[0]
    return locking, single
