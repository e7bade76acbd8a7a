"""Which live daemon serves each SIM card (`spool.card_holders`): one at a time.

A card (its ICCID) can show up in two running modems at once: a cloned card, a card moved while
the old box had not yet noticed, one device configured twice, a modem reconnected under another
name. A card's quota is decided in the memory of the daemon that sends for it, from the counts
it read when it took the card; that is sound only while no other daemon sends for the card. So
a daemon takes the card before its modem sends, by the rule that settles leases: a live
daemon's hold is never taken, a dead one's is (`daemons.judge`, asked through `dead`).

A card is named by its ICCID and by its IMSI, as `imsi:<IMSI>` (`dispatch.cards.card_keys`),
kept in the same column, each that its modem reads, taken and let go together: the IMSI is
stored on the card too, so a clone or a moved card has it, and a modem that reads no ICCID (a
firmware with no ICCID command, or one that answers ERROR, even for a moment) still meets the
hold of a modem that reads both.

The same table also holds the modem names a daemon run serves (`take_names`, key `name:<name>`):
SIM names must be unique across the boxes sharing a spool (one `sims` row per name), so a run
refuses to start with a name a live other run serves (a copied config).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.spool.audit import AuditLog
from modempool.spool.daemons import shown_owner
from modempool.spool.engine import Engine
from modempool.spool.model import from_text, to_text, utcnow


def shown_card(card: str) -> str:
    """A card's key as a person is shown it: the ICCID, or `IMSI <digits>`."""
    return f"IMSI {card[len('imsi:'):]}" if card.startswith("imsi:") else card


#: The key of a modem name's hold (`take_names`), beside the cards' ICCIDs and `imsi:` keys.
NAME_KEY = "name:"


class _Refused(Exception):
    """Names served by live other runs: the transaction that took them is rolled back."""

    def __init__(self, served: dict[str, Holder]) -> None:
        self.served = served


@dataclass(frozen=True, slots=True)
class Holder:
    """The daemon run that serves a card, the name of its modem there, and since when."""

    owner: str
    modem: str
    since: datetime | None = None

    @property
    def shown(self) -> str:
        """The holder as a person is shown it: `host:pid`."""
        return shown_owner(self.owner)


class CardHolders:
    """Rows of `sim_holders`: a card's ICCID, the daemon run serving it and its modem."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    def take(self, card: str | Sequence[str], owner: str, modem: str,
             dead: Callable[[str], bool], now: datetime | None = None) -> Holder | None:
        """Take card `card` (a key, or every key naming one card: its ICCID and `imsi:<IMSI>`,
        taken together or not at all) for `modem` of daemon run `owner`: None when it is ours
        now (it was free, ours already, or its holder is `dead`: taken over, said in the
        events); else the live holder of a key, whose hold is left as it is. A daemon's own
        hold under another modem's name is taken: a daemon knows its own modems
        (`dispatch.cards`). A dead holder's modem loses its other keys of a card too, so its
        marker, which probes one of them, fails whichever key was taken over."""
        keys = sorted({card} if isinstance(card, str) else set(card))  # one order: no deadlock
        moment = to_text(now or utcnow())
        try:
            with self.engine.tx() as conn:
                for key in keys:
                    holder = self._take_key(conn, key, keys, owner, modem, dead, moment)
                    if holder is not None:
                        raise _Refused({key: holder})
        except _Refused as refused:
            return next(iter(refused.served.values()))
        return None

    def _take_key(self, conn: Any, key: str, keys: Sequence[str], owner: str, modem: str,
                  dead: Callable[[str], bool], moment: str) -> Holder | None:
        conn.execute("INSERT INTO sim_holders (iccid, owner, modem, since) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (iccid) DO NOTHING", (key, owner, modem, moment))
        # locked: two daemons that both found a dead holder take turns, the second sees the
        # first's hold
        held_by, held_in, since = conn.execute(
            "SELECT owner, modem, since FROM sim_holders WHERE iccid = ?"
            + self.engine.lock_rows, (key,)).fetchone()
        if held_by == owner and held_in == modem:
            return None
        if held_by != owner and not dead(held_by):
            return Holder(held_by, held_in, from_text(since))
        conn.execute("UPDATE sim_holders SET owner = ?, modem = ?, since = ? WHERE iccid = ?",
                     (owner, modem, moment, key))
        if held_by != owner:
            among, values = self.engine.among("iccid", list(keys))
            conn.execute("DELETE FROM sim_holders WHERE owner = ? AND modem = ? "
                         f"AND iccid NOT LIKE ? AND NOT {among}",
                         (held_by, held_in, NAME_KEY + "%", *values))
            self.audit.record(conn, "sim-card-taken-over", sim=modem,
                              detail={"iccid": key, "from": shown_owner(held_by),
                                      "modem": held_in}, now=moment)
        return None

    def take_names(self, names: Sequence[str], owner: str, live: Callable[[str], bool],
                   now: datetime | None = None) -> dict[str, Holder]:
        """Hold the modem names `names` for daemon run `owner` (at its start; key `name:` and
        the name): {} when they are all its own now (free, or held by runs not `live`); else
        the live holder of each name another run serves, and nothing is taken. The same rows
        and locks as a card's take: two runs starting at once take turns. `live` is asked
        after the rows are locked, inside the transaction (judge then, not before)."""
        if not names:
            return {}
        moment = to_text(now or utcnow())
        keys = {NAME_KEY + name: name for name in sorted(names)}   # one order: no deadlock
        among, values = self.engine.among("iccid", list(keys))
        try:
            with self.engine.tx() as conn:
                for key, name in keys.items():
                    conn.execute("INSERT INTO sim_holders (iccid, owner, modem, since) "
                                 "VALUES (?, ?, ?, ?) ON CONFLICT (iccid) DO NOTHING",
                                 (key, owner, name, moment))
                rows = conn.execute(f"SELECT iccid, owner, since FROM sim_holders WHERE {among}"
                                    + self.engine.lock_rows, values).fetchall()
                served = {keys[key]: Holder(by, keys[key], from_text(since))
                          for key, by, since in rows if by != owner and live(by)}
                if served:
                    raise _Refused(served)
                conn.execute(f"UPDATE sim_holders SET owner = ?, since = ? WHERE {among} "
                             "AND owner <> ?", (owner, moment, *values, owner))
        except _Refused as refused:
            return refused.served
        return {}

    def holders(self, iccids: Sequence[str]) -> dict[str, Holder]:
        """The holder of each of `iccids` that has one."""
        if not iccids:
            return {}
        among, values = self.engine.among("iccid", list(iccids))
        return {row["iccid"]: Holder(row["owner"], row["modem"], from_text(row["since"]))
                for row in self.engine.rows(
                    f"SELECT iccid, owner, modem, since FROM sim_holders WHERE {among}", values)}

    def let_go(self, owner: str, iccid: str | Sequence[str] | None = None, *,
               modem: str | None = None) -> int:
        """Daemon run `owner` no longer serves card `iccid` (a key, or every key of one card,
        let go together; None: any card, or with `modem` none by key); with `modem`, every
        card key its modem `modem` holds too (not its name's hold: `take_names`), the holds
        of a take whose answer was lost among them. Returns how many holds it let go."""
        keys = [] if iccid is None else [iccid] if isinstance(iccid, str) else list(iccid)
        with self.engine.tx() as conn:
            if modem is not None:
                among, values = self.engine.among("iccid", keys)
                done = conn.execute(
                    "DELETE FROM sim_holders WHERE owner = ? AND ((modem = ? AND iccid NOT "
                    f"LIKE ?) OR {among})", (owner, modem, NAME_KEY + "%", *values))
            elif iccid is None:
                done = conn.execute("DELETE FROM sim_holders WHERE owner = ?", (owner,))
            else:
                among, values = self.engine.among("iccid", keys)
                done = conn.execute(f"DELETE FROM sim_holders WHERE owner = ? AND {among}",
                                    (owner, *values))
            return int(done.rowcount or 0)

    def __call__(self) -> list[dict[str, object]]:
        """Every hold of a card, by ICCID."""
        return [dict(r) for r in self.engine.rows(
            "SELECT * FROM sim_holders WHERE iccid NOT LIKE ? ORDER BY iccid", (NAME_KEY + "%",))]

    def names(self) -> list[dict[str, object]]:
        """Every hold of a modem name (`take_names`), by name."""
        return [dict(r) for r in self.engine.rows(
            "SELECT modem, owner, since FROM sim_holders WHERE iccid LIKE ? ORDER BY modem",
            (NAME_KEY + "%",))]
