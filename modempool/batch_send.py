"""A batch queued as its numbers are read (`Pool.queue_chunks`): a 100,000-recipient send
that is never held whole in memory as Python objects.

The numbers come in chunks (a few thousand at a time). Each chunk is normalised, checked
against the blacklist and opt-outs, and written before the next is read, all in one
transaction: a refusal anywhere rolls back every chunk written before it, so a batch is all
or nothing. The refusal names the first bad number by its row (from 1), as a batch given
whole does (`RowError`, `InvalidRow`). What stays in memory is one id per message, packed
(`QueuedIds.ids`, 8 bytes each).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from modempool.errors import InvalidNumber, PoolError, RowError
from modempool.spool.numbers import normalise_all
from modempool.spool.plain_text import refuse_nul
from modempool.spool.sendable import check_text
from modempool.when import check_window, parse_when

if TYPE_CHECKING:
    from modempool.pool import Pool

#: Numbers per chunk where a caller chooses: big enough that a chunk's statements cost little
#: per message, small enough that its rows are a few hundred kB.
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class QueuedIds:
    """What a batch queued: each message's id, in the order of its numbers (an `array` of
    64-bit integers), and how many were queued by this call (`fresh`; the others were there
    from an earlier call with the same `client_id`)."""

    ids: array
    fresh: int

    def __len__(self) -> int:
        return len(self.ids)


def queue_chunks(pool: Pool, chunks: Iterable[Sequence[str]], text: str, *,
                 client_id: str | None = None, at: datetime | str | None = None,
                 expires: datetime | str | None = None, priority: int = 0,
                 sims: Iterable[str] = (), to_opted_out: bool = False,
                 on_write: Callable[[Any, list[int]], None] | None = None) -> QueuedIds:
    """See `Pool.queue_chunks`."""
    config, spool = pool.config, pool.spool
    bound = list(sims)
    config.check_sims(bound)
    not_before, expires_at = parse_when(at, config.tz), parse_when(expires, config.tz)
    check_window(not_before, expires_at)
    check_text(text, spool.messages.max_parts)
    refuse_nul("client_id", client_id)
    ids, fresh = array("q"), 0
    with spool.transaction() as conn:
        for offset, numbers, several in _placed_chunks(chunks):
            e164s = _normalised(numbers, config.region, offset, several)
            refusals = pool.refusals(e164s, to_opted_out=to_opted_out)
            if refusals:
                first = refusals[0]
                raise _placed(first, offset + e164s.index(first.number) + 1, several)
            rows = [{"to": e164, "text": text, "priority": priority, "not_before": not_before,
                     "expires_at": expires_at, "sims": bound or None,
                     "client_id": fan_out(client_id, offset + index, several)}
                    for index, e164 in enumerate(e164s)]
            try:
                chunk_ids, new = spool.messages.enqueue_fresh(rows, normalised=True)
            except RowError as exc:
                raise _placed(exc.problem, offset + exc.row, several) from None
            ids.extend(chunk_ids)
            fresh += len(new)
            if on_write is not None and new:
                on_write(conn, new)
    return QueuedIds(ids, fresh)


def _placed_chunks(chunks: Iterable[Sequence[str]]) -> Iterator[tuple[int, list[str], bool]]:
    """Each non-empty chunk as a list, with the row offset of its first number and whether
    the batch has several numbers (a batch of one keeps its key and errors unnumbered, as a
    single send): known from the first chunk, or by reading one chunk ahead."""
    given = (numbers for numbers in map(list, chunks) if numbers)
    first = next(given, None)
    if first is None:
        raise InvalidNumber("no recipient: give at least one number", code="no_recipient")
    ahead = [] if len(first) > 1 else list(islice(given, 1))
    several = len(first) > 1 or bool(ahead)
    offset = 0
    for numbers in chain([first], ahead, given):
        yield offset, numbers, several
        offset += len(numbers)


def _normalised(numbers: list[str], region: str, offset: int, several: bool) -> list[str]:
    """The chunk's numbers in E.164; a bad one is named by its row in the whole batch."""
    try:
        return normalise_all(numbers, region, remember=False)
    except RowError as exc:
        raise _placed(exc.problem, offset + exc.row, several) from None
    except InvalidNumber as exc:   # a chunk of one number
        raise _placed(exc, offset + 1, several) from None


def _placed(error: PoolError, row: int, several: bool) -> PoolError:
    """`error`, about the number in `row` (from 1) of the batch: named by its row when the
    batch has several numbers."""
    return RowError.of(row, error) if several else error


def fan_out(client_id: str | None, index: int, several: bool) -> str | None:
    """The idempotency key of the `index`-th recipient of a send: the key itself for a send
    to one number, `key:1`, `key:2`, ... for several (the same call again then sends nothing
    new)."""
    if client_id is None or not several:
        return client_id
    return f"{client_id}:{index + 1}"
