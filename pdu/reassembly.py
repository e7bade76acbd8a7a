"""Reassembling concatenated parts into one message, in any order, tolerating duplicates."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .alphabet import Alphabet
from .messages import Decoded
from .national import charset


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A group that timed out before all its parts came."""

    sender: str
    reference: int
    total: int
    parts_received: tuple[int, ...]
    text_so_far: str


@dataclass(slots=True)
class _Group:
    first_seen: float
    parts: dict[int, Decoded] = field(default_factory=dict)


def _seconds(value: datetime | float | None) -> float:
    if value is None:
        return time.monotonic()
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _join(parts: list[Decoded]) -> str:
    """Join at the code-unit level, so a peer that split a surrogate or escape pair still reads right."""
    first = parts[0]
    if all(p.alphabet is Alphabet.UCS2 and not p.compressed for p in parts):
        return b"".join(p.data for p in parts).decode("utf-16-be", "replace")
    if all(p.alphabet is Alphabet.GSM7 and not p.compressed and p.national == first.national
           for p in parts):
        return charset(*first.national).decode(b"".join(p.data for p in parts))
    return "".join(p.text for p in parts)


class Reassembler:
    """Collects parts by (sender, reference, total, 8/16-bit); gives the text once all are in.

    `now` may be monotonic seconds (the default clock) or datetimes; use one kind consistently.
    """

    def __init__(self, timeout: timedelta | float = timedelta(hours=24)) -> None:
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self._groups: dict[tuple, _Group] = {}
        self._done: dict[tuple, float] = {}  # recently completed groups: late duplicates are dropped

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, sender: str, decoded: Decoded, now: datetime | float | None = None) -> str | None:
        """Add one decoded part; returns the whole text when this part completes the message."""
        concat = decoded.concat
        if concat is None:
            return decoded.text
        t = _seconds(now)
        if len(self._done) > 10_000:  # callers that never call expired() must not grow forever
            self._forget_done(t)
        key = (sender, concat.reference, concat.total, concat.ref16)
        done_at = self._done.get(key)
        if done_at is not None:
            if t - done_at <= self.timeout:
                return None  # a duplicate of a part of a message already given out
            del self._done[key]
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(t)
        group.parts.setdefault(concat.seq, decoded)
        if len(group.parts) < concat.total:
            return None
        del self._groups[key]
        self._done[key] = t
        return _join([group.parts[s] for s in sorted(group.parts)])

    def expired(self, now: datetime | float | None = None) -> list[Incomplete]:
        """Remove and return the groups older than the timeout."""
        t = _seconds(now)
        out = []
        for key, group in list(self._groups.items()):
            if t - group.first_seen >= self.timeout:
                del self._groups[key]
                sender, reference, total, _ = key
                seqs = tuple(sorted(group.parts))
                out.append(Incomplete(sender, reference, total, seqs,
                                      _join([group.parts[s] for s in seqs])))
        self._forget_done(t)
        return out

    def _forget_done(self, t: float) -> None:
        for key, done_at in list(self._done.items()):
            if t - done_at > self.timeout:
                del self._done[key]
