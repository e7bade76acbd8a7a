"""The SIM cards this daemon serves: a card (ICCID) is served by one live daemon, and in it by one
modem, at a time.

A modem that comes up takes its card (`spool.card_holders`) before it goes into rotation.
Refused (another live daemon serves the card, or another modem of this daemon reports the same
ICCID), it sends nothing and says why (`CardElsewhere`); its task asks again a beat later,
since the other may die or let go. A daemon judged dead while it lived (its heartbeat unseen
for `[pool] silent_after`) may find a card taken over: each part's marker requires the modem's
hold in its own statement (`Claims.require_hold`, a probe of the holders' key), so not one
more part goes out on it (`CardLost`), and with each heartbeat the daemon looks whether its
cards are still its own (a hold taken over, or gone) and stops the modems that lost theirs.
A modem lets its card go when it stops serving (down, quarantined, the daemon stopping). The
cost is a statement when a modem comes up, one per heartbeat, and one index probe in each
marker's statement (no round trip).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from modempool.errors import PoolError
from modempool.spool.card_holders import Holder, shown_card
from modempool.spool.daemons import HeartbeatWatch
from modempool.spool.unavailable import log_failure

log = logging.getLogger("modempool.dispatch.cards")


class CardElsewhere(Exception):
    """This modem's card is served by another live daemon, or by another modem of this one."""


def card_keys(iccid: str | None, imsi: str | None, known: Sequence[str] = ()) -> list[str]:
    """What names the SIM card in a modem among the holders: its ICCID and `imsi:<IMSI>`
    (AT+CIMI, which every modem answers once the SIM is ready: the subscription, stored on the
    card, so a cloned or moved card has it too), each that the modem reads. Both are taken
    together: a modem whose ICCID command answers ERROR (its firmware, or a busy SIM) meets the
    hold of one that read both. A modem that reads the ICCID and no IMSI takes the IMSIs the
    spool `known`s for that ICCID (`Sims.card_imsis`) in its place, and so meets a clone read
    by its IMSI alone. The first is the one the part markers probe. [] when it reads neither:
    nothing tells the card apart."""
    imsis = [imsi] if imsi else list(known) if iccid else []
    return [key for key in (iccid or None, *(f"imsi:{i}" for i in imsis)) if key]


def dead_judge(spool: Any, watch: HeartbeatWatch, shared: bool) -> Callable[[str], bool]:
    """Whether a card's holder (a daemon run) is dead: on a shared spool by the rule that
    settles leases (`shared.dead_runs`); on SQLite, where one daemon holds the spool's lock,
    every other run is (as every lease found at start is)."""
    if not shared:
        return lambda owner: True
    from modempool.dispatch.shared import dead_runs

    dead = dead_runs(spool, watch)
    return lambda owner: bool(dead([owner]))


class CardsServed:
    """The cards this daemon run (`owner`) holds, by ICCID, and for each modem an event set
    when its card is taken from it. Its spool work runs in `lane` (a `SpoolLane`), its looks
    in `lane_for_looks`."""

    def __init__(self, spool: Any, owner: str, lane: Any, dead: Callable[[str], bool],
                 lane_for_looks: Any = None) -> None:
        self.spool = spool
        self.owner = owner
        self.lane = lane
        self.lane_for_looks = lane_for_looks or lane   # `check`'s: not behind the heartbeat
        self.dead = dead
        self.served: dict[str, str] = {}           # card key -> the modem serving it here
        self._lost: dict[str, asyncio.Event] = {}  # modem -> set when its card was taken
        self._why: dict[str, str] = {}             # modem -> why it was
        self._taking: set[str] = set()             # ICCIDs whose take is under way
        self._unsure: set[str] = set()   # modems whose take's answer was lost: holds unknown
        self._first: dict[str, str] = {}   # modem -> the key its markers require (`card_of`)

    async def take(self, modem: str, card: str | Sequence[str], lease_owner: str,
                   ) -> asyncio.Event:
        """Take the card named by `card` (a key, or its `card_keys`, taken together) for
        `modem`: the event set if another daemon takes it over later. `CardElsewhere` (one line, naming
        the holder) if it is served elsewhere. From then on each part marker of `lease_owner`
        (the modem's leases) requires the hold of its first key, in its own statement
        (`Claims.require_hold`): `CardLost` when it is gone."""
        keys = [card] if isinstance(card, str) else list(card)
        for key in keys:
            here = self.served.get(key)
            if here is not None and here != modem:
                what = "IMSI" if key.startswith("imsi:") else "ICCID"
                raise CardElsewhere(f"its SIM card {shown_card(keys[0])} is already served by "
                                    f"modem {here} of this daemon (two modems report one "
                                    f"{what}: a cloned card, or one device configured twice)")
        for key in keys:   # at once: another modem here with this card is refused
            self.served[key] = modem
        self._taking.update(keys)
        try:
            holder = await self.lane.run(self.spool.card_holders.take, list(keys), self.owner,
                                         modem, self.dead)
        except BaseException:
            self._forget(modem, keys)
            self._unsure.add(modem)   # its COMMIT may have gone through: `let_go` by the modem
            raise
        finally:
            self._taking.difference_update(keys)
        if holder is not None:
            self._forget(modem, keys)
            raise CardElsewhere(_held(keys[0], holder))
        self._why.pop(modem, None)
        self.spool.claims.require_hold(lease_owner, (keys[0], self.owner, modem))
        self._first[modem] = keys[0]
        lost = self._lost[modem] = asyncio.Event()
        return lost

    async def complete(self, modem: str, keys: Sequence[str], lease_owner: str,
                       lost: asyncio.Event) -> bool:
        """`modem`, serving already (by its ICCID alone, or unchecked) and watching `lost`,
        reads more of its card's keys now (`dispatch.card_reask`): take them all. Refused (the
        card served by another modem or a live daemon under a key it read only now): `lost`
        is set with the reason and False; the modem stops as one whose card was taken over,
        and what it held is let go when it does. A database failure is raised, what it held
        kept."""
        held = [key for key, m in self.served.items() if m == modem]
        try:
            await self.take(modem, keys, lease_owner)
        except CardElsewhere as exc:
            self.served.update((key, modem) for key in held)
            self._why[modem] = str(exc)
            lost.set()
            return False
        except BaseException:
            self.served.update((key, modem) for key in held)
            raise
        self._lost[modem] = lost   # the event its modem watches
        return True

    def give_up(self, modem: str, why: str, lost: asyncio.Event) -> None:
        """`modem`, serving, stops serving its card for `why` (its counts unread, another card
        in it): it stops as one whose card was taken over, saying `why`, and what it held is
        let go when it does."""
        self._why[modem] = why
        lost.set()

    def _forget(self, modem: str, keys: Sequence[str]) -> None:
        for key in keys:
            if self.served.get(key) == modem:
                del self.served[key]

    def serve_without_card(self, lease_owner: str) -> None:
        """A modem that reads neither ICCID nor IMSI: its markers require no hold (its card cannot
        be told apart)."""
        self.spool.claims.require_hold(lease_owner, None)

    def card_of(self, modem: str) -> str | None:
        """The key `modem`'s markers write as their card (the first of its hold's), while it
        holds its card; None before it took one, after it let go, or serving unchecked. Stored
        with the delivery reports it hears: a report comes back to the card, wherever it sits
        (`spool.report_cards`)."""
        return self._first.get(modem)

    def why_lost(self, modem: str) -> str:
        """Why `modem`'s card was taken from it (after its event was set)."""
        return self._why.get(modem, "its SIM card was taken over by another daemon")

    async def let_go(self, modem: str) -> None:
        """`modem` no longer serves its card (if it had one): another may take it now. Its
        holds are let go by its keys and by its name: a take whose COMMIT went through but
        whose answer was lost left holds its keys in `served` do not name. One the database
        fails is tried again at the modem's next `let_go` (`_run_modem` lets go after every
        open attempt, a reconnect backoff, at most 30 s, or a quarantine apart while the modem
        does not serve; if it serves again first, at the end of that session), by
        its name: its keys are forgotten here already."""
        keys = [key for key, m in self.served.items() if m == modem]
        self._first.pop(modem, None)
        if not keys and modem not in self._unsure:
            return
        self._forget(modem, keys)
        try:   # its keys together
            await self.lane.run(self.spool.card_holders.let_go, self.owner, keys, modem=modem)
        except Exception as exc:  # its hold stays ours until the next `let_go` of the modem
            self._unsure.add(modem)
            log_failure(log, f"could not let go of the SIM card in {modem}; trying again "
                        "when the modem next lets go", exc)
        else:
            self._unsure.discard(modem)

    async def check(self) -> None:
        """Every heartbeat (apart from the heartbeat's write, so that one that waits does not
        hold this back): whether this daemon's cards are still its own. A card another daemon
        took over (it judged this one dead), or whose hold is gone (taken over and let go
        since), stops its modem, which takes its card again. The part markers require the
        hold too, so a look that fails (the database away) lets nothing through meanwhile."""
        served = {iccid: modem for iccid, modem in self.served.items()
                  if iccid not in self._taking}
        if not served:
            return
        try:
            holders = await self.lane_for_looks.run(self.spool.card_holders.holders,
                                                    list(served))
        except Exception as exc:  # the database away: no marker is committed meanwhile either
            log_failure(log, "could not look whether this daemon's SIM cards are its own", exc)
            return
        for iccid, modem in served.items():
            holder = holders.get(iccid)
            if (self.served.get(iccid) != modem or self._lost[modem].is_set()
                    or (holder is not None and holder.owner == self.owner)):
                continue   # its own, or lost by its other key already
            del self.served[iccid]   # its other key stays in `served` until `let_go`
            self._why[modem] = _gone(iccid) if holder is None else _taken(iccid, holder)
            self._lost[modem].set()


def hold_names(spool: Any, owner: str, names: list[str], silent_after: float) -> None:
    """At a daemon's start on a shared spool: the modem names of run `owner` are its own, or
    PoolError, one line naming the host that serves one. SIM names must be unique across the
    boxes: a copied config would make two modems share one `sims` row (its ICCID, so the
    counts of one card, flipping between two) and one name's TP-MR history. A name is a live
    other run's by `status`'s rule (its process here alive; elsewhere, its heartbeat younger
    than `silent_after` by this host's clock): a check of the config, not the guard of what
    is sent, which the cards' holds are (a dead box's names are free, a live box's never)."""
    from modempool.dispatch.liveness import running_rows

    running: set[str] = set()
    read: list[bool] = []

    def live(holder: str) -> bool:
        # read when first asked: in the take's transaction, after the names' rows are locked,
        # so a run that beat and took its names meanwhile is seen live (its beat comes first)
        if not read:
            running.update(row["owner"] for row in running_rows(spool, stale_after=silent_after))
            read.append(True)
        return holder != owner and holder in running

    served = spool.card_holders.take_names(names, owner, live)
    if served:
        holder = next(iter(served.values()))
        several = len(served) > 1
        raise PoolError(f"modem name{'s' if several else ''} {', '.join(sorted(served))} "
                        f"{'are' if several else 'is'} served by another live daemon, "
                        f"{holder.shown}: SIM names must be unique across the boxes sharing a "
                        f"spool (rename {'them' if several else 'it'} in [[modem]] name, or "
                        "stop that daemon first)")


def _gone(iccid: str) -> str:
    return (f"its hold on its SIM card {shown_card(iccid)} is gone (another daemon judged this "
            "one dead, took the card over and let it go since)")


def _taken(iccid: str, holder: Holder) -> str:
    return (f"its SIM card {shown_card(iccid)} was taken over by another daemon, {holder.shown} "
            f"(its modem {holder.modem}), which judged this one dead")


def _held(iccid: str, holder: Holder) -> str:
    return (f"its SIM card {shown_card(iccid)} is served by another live daemon, {holder.shown} "
            f"(its modem {holder.modem})")
