"""Whether the rest of a message cut between parts may go on from a modem's card (rev24 F2).

A recipient's phone joins the parts of a long SMS from one sender only, so the parts still to
go must leave from the card that sent those already out. A cut message is bound to the modem
*name* that sent them (recovery, a requeue's `only_sim`, an operator's retry); the card in that
modem may have changed since (moved to another slot, another card put in). The sending path
asks here before it resumes: a modem holding another card (or reading none now) must not send
the rest, and the message becomes AMBIGUOUS with this module's reason, for an operator to
decide. Parts written with no card (an older daemon, a modem that read none) keep the name rule.
"""

from __future__ import annotations

from typing import Any

from modempool.spool.card_holders import shown_card
from modempool.spool.card_links import card_keys
from modempool.spool.recovery import ACCEPTED


def resume_refusal(conn: Any, message_id: int, card: str | None, modem: str) -> str | None:
    """Why `modem`, holding `card` (its hold's first key; None: it reads no card), must not send
    the rest of `message_id` (in `conn`'s transaction); None where it may."""
    out = conn.execute(
        f"SELECT seq, card FROM parts WHERE message_id = ? AND state IN {ACCEPTED} ORDER BY seq",
        (message_id,)).fetchall()
    cards = sorted({row[1] for row in out if row[1] is not None})
    if not cards or (card is not None and all(card in card_keys(conn, sent) for sent in cards)):
        return None
    seqs = [row[0] for row in out]
    parts = f"part {seqs[0]}" if len(seqs) == 1 else f"parts {', '.join(map(str, seqs))}"
    senders = " / ".join(shown_card(sent) for sent in cards)
    now = "reads no card" if card is None else f"holds {shown_card(card)}"
    return (f"the card that sent {parts} ({senders}) is no longer in {modem} (it {now} now); "
            "the rest would come from another number, which the phone cannot join: "
            "not sent")
