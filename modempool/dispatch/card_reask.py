"""A modem that serves without its card's IMSI is asked again while it serves.

`ModemTask._read_card` asks a modem that reads no IMSI again for a few heartbeats, then lets it
serve with what it read: by its ICCID alone, or unchecked. Such a modem would otherwise never
be asked again for the whole session (a moment's ERROR of AT+CIMI, or a SIM slow after its
PIN, lasting past those tries), and a clone of its card read by its IMSI alone elsewhere would
send too. So it is asked again, every heartbeat at first and less often later, until it reads
the IMSI; its daemon then takes the keys it reads (`CardsServed.complete`), and a refusal stops
the modem as a card taken over does. Once taken by them, the card's counts are read again (its
day may have been spent under its IMSI in another modem or box): a modem never sends on counts
that are not its card's, so where they cannot be read the card is given up (the modem stops,
lets it go and stands by until they can). A modem that reads another ICCID than the one it
serves by, on any ask (its IMSI read or not), holds another card (swapped with no SIM event):
nothing is taken on the old card's counts; the modem stops and identifies afresh. An ask that
reads the IMSI and not the ICCID is the session's card only where the spool knows that pair;
else it asks again. Recording the card leaves the serving modem's state alone (a database
failure there is asked again later, not a stand-by for the rest of the session).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from at_commands import AtError

from modempool.dispatch.cards import card_keys
from modempool.spool.unavailable import database_failed, log_failure

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


async def ask_until_imsi(modem: Any, info: Any, lost: asyncio.Event, trouble: asyncio.Event,
                         *, every: float, sleep: Callable[[float], Awaitable[None]],
                         name_card: Callable[[Any], Awaitable[Any]],
                         take: Callable[[list[str]], Awaitable[bool]],
                         learn: Callable[[Any], Awaitable[None]],
                         give_up: Callable[[str], None],
                         stopped: Callable[[], bool], mlog: logging.Logger,
                         imsis_of: Callable[[str], Awaitable[list[str]]]) -> str | None:
    """Ask `modem` who it is until it reads its card's IMSI (`_ask`), then record the card
    (`name_card`, which leaves the modem serving), `take` its keys (False: refused, `lost` set
    by it) and `learn` its counts by them. An IMSI read without the ICCID is the session's
    card only where the spool knows the pair (`imsis_of` the session's ICCID). A database
    failure of the record or the take: asked again later; of `learn`: `give_up` (which sets
    `lost`) says why. A failure that is neither the driver's nor the database's (a bug)
    ends the modem's session: one ERROR line, `trouble` set, and why returned (else None)."""
    try:
        await _ask(modem, info, lost, every=every, sleep=sleep, name_card=name_card,
                   take=take, learn=learn, give_up=give_up, stopped=stopped, mlog=mlog,
                   imsis_of=imsis_of)
    except Exception as exc:   # a bug: said once, now, not when the session ends
        why = f"asking its SIM card's IMSI again failed: {exc or type(exc).__name__}"
        mlog.error("%s; stops serving and reconnects", why)
        mlog.debug("where asking again failed", exc_info=True)
        trouble.set()
        return why
    return None


async def _ask(modem: Any, info: Any, lost: asyncio.Event, *, every: float,
               sleep: Callable[[float], Awaitable[None]],
               name_card: Callable[[Any], Awaitable[Any]],
               take: Callable[[list[str]], Awaitable[bool]],
               learn: Callable[[Any], Awaitable[None]], give_up: Callable[[str], None],
               stopped: Callable[[], bool], mlog: logging.Logger,
               imsis_of: Callable[[str], Awaitable[list[str]]]) -> None:
    """Every `every` seconds doubling up to `LONGEST_WAIT`, until the IMSI is read and the
    card taken by it (or refused, or given up), `lost` is set, the daemon `stopped`, or the
    task is cancelled when the modem stops serving."""
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
        if again.iccid and info.iccid and again.iccid != info.iccid:   # IMSI read or not
            give_up(f"its SIM card changed (it reads ICCID {again.iccid} now, not "
                    f"{info.iccid}): identifies it afresh")
            return
        if not again.imsi:
            continue
        try:
            again = await _with_iccid(again, info, imsis_of, mlog)
            if again is None:
                continue
            await name_card(again)
        except Exception as exc:
            if not database_failed(exc):
                raise
            log_failure(mlog, "could not record its SIM card by its IMSI; asking again", exc)
            continue
        keys = card_keys(again.iccid, again.imsi)
        try:
            if not await take(keys):
                return   # refused: `lost` is set
        except Exception as exc:
            if not database_failed(exc):
                raise
            log_failure(mlog, "could not take its SIM card by its IMSI; asking again", exc)
            continue
        try:   # the card's day may have been spent under its IMSI elsewhere
            await learn(again)
        except Exception as exc:
            if not database_failed(exc):
                raise
            log_failure(mlog, "could not read the counts of its SIM card by its IMSI; "
                        "lets it go", exc)
            give_up("waiting for the database to read the counts of its SIM card")
            return
        mlog.info("reads the IMSI of its SIM card now: holds it by %s", ", ".join(keys))
        return


async def _with_iccid(again: Any, info: Any, imsis_of: Callable[[str], Awaitable[list[str]]],
                      mlog: logging.Logger) -> Any | None:
    """`again`, an ask that read the IMSI, with the ICCID the session read (`info`) where its
    own read failed and the spool knows that ICCID and this IMSI as one card's; None (ask
    again) where it does not: the card may have been swapped with no SIM event, and the new
    card's IMSI must not be paired with the old card's ICCID (in `sims`, its counts, its
    holds) for good (rev22a R2)."""
    if again.iccid or not info.iccid:
        return again
    if again.imsi not in await imsis_of(info.iccid):
        mlog.info("reads IMSI %s but not its SIM card's ICCID, a pair the spool does not know; "
                  "asking again", again.imsi)
        return None
    return dataclasses.replace(again, iccid=info.iccid)
