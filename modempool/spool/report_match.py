"""Which sent part a delivery report is for: by its modem's name, and by the card it came back to.

TP-MR is the card's counter and a report comes back to the card (the subscription), in the
modem the card sits in when it comes, not to the modem that wrote the part. Two reads answer
it, in one statement:

- By name (the rule of every version): the latest part sent by the report's modem name with
  its TP-MR, to its recipient. A report stored with no card (an older daemon's, a modem that
  held none) has only this one, as before. One that names its card takes it when the card
  wrote it (under a key the spool links to it: `card_links.py`), or when its modem held no
  card then (`parts.card` NULL).
- By card: the latest part sent with that TP-MR to that recipient by any of the card's keys,
  on any modem of any box, WRITTEN IN THE REPORT'S WINDOW (`ambiguity.WINDOW_AFTER` before
  the service centre's stamp to `CLOCK_SLACK` after it). The window keeps the match to the
  write that took the reference this time round: TP-MR comes back after 256 writes, which a
  card cannot make in two minutes, so an older write of the card (or one under a key the spool
  never linked to it, below) is never taken for it. It finds the part of a card moved to
  another modem or box since it wrote it (before, such a part stayed sent, never delivered),
  and the card's own write on the name behind a later write of another card there (rev23 L2:
  the name's latest, another card's, was rejected and nothing else looked at).

The later of the two by the time sent (then by id) is the report's part. The name's latest
counts only when it may be the card's: the card's own, a write of no card, or one under a key
of the other form that the spool links to no card (`card_links.UNLINKED`: it may be the card's
own write under its other key); the last one matches nothing (as before): neither it nor an
older write is known to be the card's. Another card's write on the name is passed over, never
matched. Uses: the name's read on `parts_report` (sim, TP-MR, sent time), the card's on
`parts_by_card_reference` (card, TP-MR, writing time: schema step 23, `report_cards.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from modempool.spool.ambiguity import CLOCK_SLACK, WINDOW_AFTER
from modempool.spool.card_links import LINKED_KEYS, UNLINKED, is_imsi, linked_keys_parameters
from modempool.spool.model import to_text

#: The columns both reads give: the part, its message, the modem that wrote it, when it was
#: sent; whether its card is the report's (or none), whether it may be the report's card's
#: own write under an unlinked key.
_COLUMNS = ("writes.id, writes.message_id, writes.sim, writes.sent_at, {own} AS own, "
            "{unlinked} AS unlinked")
_SENT_WITH = ("FROM parts AS writes JOIN messages ON messages.id = writes.message_id "
              "WHERE writes.message_reference = ? AND writes.sent_at IS NOT NULL {to}")
_LATEST = " ORDER BY writes.sent_at DESC, writes.id DESC LIMIT 1"
#: The card's keys, as one column (parameters: the card, then `linked_keys_parameters`).
_KEYS = "SELECT CAST(? AS TEXT) UNION {linked}"


@dataclass(frozen=True, slots=True)
class MatchedPart:
    """The sent part a report matched: its id, its message, the modem that wrote it."""

    part_id: int
    message_id: int
    sim: str | None


@cache
def _by_name(named: bool, to: bool) -> str:
    """The name's latest part with the TP-MR (and recipient), any card (parameters: TP-MR,
    recipient, name): every version's match of a report stored with no card."""
    return ("SELECT " + _COLUMNS.format(own="1", unlinked="0")
            + " " + _SENT_WITH.format(to="AND messages.to_number = ?" if to else "")
            + (" AND writes.sim = ?" if named else "") + _LATEST)


@cache
def _by_name_and_card(named: bool, to: bool, imsi: bool) -> str:
    """The name's latest, and the card's latest written in the window (see the module's
    docstring). Parameters: the card and its linked-key parameters, TP-MR, recipient, name;
    then TP-MR, recipient, the card and its linked-key parameters, the window."""
    keys = _KEYS.format(linked=LINKED_KEYS[imsi])
    own = f"CASE WHEN writes.card IS NULL OR writes.card IN ({keys}) THEN 1 ELSE 0 END"
    unlinked = f"CASE WHEN {UNLINKED[imsi]} THEN 1 ELSE 0 END"
    to_clause = "AND messages.to_number = ?" if to else ""
    name = ("SELECT " + _COLUMNS.format(own=own, unlinked=unlinked) + " "
            + _SENT_WITH.format(to=to_clause) + (" AND writes.sim = ?" if named else "")
            + _LATEST)
    card = ("SELECT " + _COLUMNS.format(own="1", unlinked="0") + " "
            + _SENT_WITH.format(to=to_clause)
            + f" AND writes.card IS NOT NULL AND writes.card IN ({keys}) "
            "AND writes.writing_at >= ? AND writes.writing_at <= ?" + _LATEST)
    return f"SELECT * FROM ({name}) AS by_name UNION ALL SELECT * FROM ({card}) AS by_card"


def match_sent_part(conn: Any, *, sim: str | None, card: str | None, message_reference: int,
                    recipient: str | None, network_time: datetime) -> MatchedPart | None:
    """The sent part a report with `message_reference` to `recipient` (None: any), heard on
    `sim` (None: any modem) holding `card` (None: unknown), is for, in `conn`'s transaction;
    `network_time`: the service centre's stamp (or the time it was heard, without one). None
    when no part is known to be its (see the module's docstring)."""
    to = (recipient,) if recipient else ()
    named = (sim,) if sim is not None else ()
    if card is None:
        rows = conn.execute(_by_name(bool(named), bool(to)),
                            (message_reference, *to, *named)).fetchall()
    else:
        keys = (card, *linked_keys_parameters(card))
        window = (to_text(network_time - WINDOW_AFTER), to_text(network_time + CLOCK_SLACK))
        rows = conn.execute(_by_name_and_card(bool(named), bool(to), is_imsi(card)),
                            (*keys, message_reference, *to, *named,
                             message_reference, *to, *keys, *window)).fetchall()
    found = [row for row in rows if row[4] or row[5]]    # another card's write: passed over
    if not found:
        return None
    part_id, message_id, written_on, _sent_at, own, _unlinked = max(
        found, key=lambda row: (row[3], row[0]))
    if not own:
        return None     # a later write that may be the card's under a key never linked to it
    return MatchedPart(part_id, message_id, written_on)
