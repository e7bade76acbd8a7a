"""A modem that serves without its card's IMSI is asked again while it serves.

`ModemTask._read_card` asks a modem that reads no IMSI again for a few heartbeats, then lets it
serve with what it read: by its ICCID alone, or unchecked. Such a modem would otherwise never
be asked again for the whole session (a moment's ERROR of AT+CIMI, or a SIM slow after its
PIN, lasting past those tries), and a clone of its card read by its IMSI alone elsewhere would
send too. So it is asked again, every heartbeat at first and less often later, until it reads
the IMSI; its daemon then takes the keys it reads (`CardsServed.complete`), and a refusal stops
the modem as a card taken over does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from at_commands import AtError

from modempool.dispatch.cards import card_keys

#: The longest wait between two asks (seconds): a modem that never reads its IMSI is asked
#: about once in that time, one identify (some fifteen short commands) each.
LONGEST_WAIT = 300.0


def say_iccid_alone(keys: list[str], tries: int, mlog: logging.Logger) -> None:
    """The WARNING of a modem that read its card's ICCID and, `tries` times, no IMSI: it holds
    the card by `keys` (its ICCID, and the IMSIs the spool knows for it)."""
    if len(keys) == 1:
        mlog.warning("serves by its ICCID alone after %d tries: a clone of its SIM card read "
                     "by its IMSI only cannot be told apart", tries)
    else:
        mlog.warning("reads no IMSI after %d tries: takes its SIM card by its ICCID and the "
                     "IMSI the spool knows for it (%s)", tries,
                     ", ".join(key[len("imsi:"):] for key in keys[1:]))


async def ask_until_imsi(modem: Any, info: Any, lost: asyncio.Event, *, every: float,
                         sleep: Callable[[float], Awaitable[None]],
                         name_card: Callable[[Any], Awaitable[Any]],
                         take: Callable[[list[str]], Awaitable[bool | None]],
                         stopped: Callable[[], bool], mlog: logging.Logger) -> None:
    """Ask `modem` who it is, every `every` seconds doubling up to `LONGEST_WAIT`, until it
    reads its card's IMSI (or `lost` is set, the daemon `stopped`, or the task is cancelled
    when the modem stops serving); then record the card (`name_card`) and `take` its keys (False: refused, `lost`
    was set by it; None: the database could not, asked again later)."""
    wait = every
    while not lost.is_set() and not stopped():
        await sleep(wait)
        if lost.is_set() or stopped():
            return
        wait = min(wait * 2, LONGEST_WAIT)
        try:
            again = await modem.identify()
        except (AtError, OSError, TimeoutError) as exc:   # the driver's trouble is seen elsewhere
            mlog.debug("asking its SIM card's IMSI again failed: %s", exc)
            continue
        if not again.imsi:
            continue
        if not again.iccid:   # its ICCID read before, in this session: the row keeps it
            again = dataclasses.replace(again, iccid=info.iccid)
        await name_card(again)
        keys = card_keys(again.iccid, again.imsi)
        taken = await take(keys)
        if taken is None:   # the database could not take them: ask again
            continue
        if taken:
            mlog.info("reads the IMSI of its SIM card now: holds it by %s", ", ".join(keys))
        return
