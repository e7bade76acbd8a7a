"""What the spool knows of one SIM card's two keys: which writes the ambiguity rule reads as its.

A write's card (`parts.card`) is the first key of its modem's hold (`dispatch.cards`): the
ICCID where the modem reads it, else `imsi:<IMSI>` (a firmware with no ICCID command, an ICCID
read that failed once). So one card's writes stand under two keys once it sat in a modem that
read only its IMSI, and the rule must read both as one counter (audit22 F3: a never-sent SMS was
proven sent by the report of the card's write under its other key). The spool links the two
where a modem read them together: its `sims` row naming both, a `sim_counters` row counted
under the ICCID that keeps the IMSI (schema 21), every pair a modem read (`card_imsis`, schema
23: a multi-IMSI card's earlier IMSIs, which the other two forget). Not by one modem's holds (`sim_holders`): a
hold its let-go failed to remove stays beside the next card's, and would link that card to
the old one's IMSI, whose writes it would then read as its own (rev22b R2).

A key of the other form the spool never saw with the card (it sat only in modems that read one
key each; a multi-IMSI card's new IMSI) may be any key that the spool links to no card:
`UNLINKED` says which writes those are, and the rule counts them as possibly the card's,
whatever links the card has.
"""

from __future__ import annotations

from typing import Any

IMSI_PREFIX = "imsi:"

#: Schema step 23 (both engines): every IMSI a modem read beside an ICCID, kept for good. A
#: multi-IMSI card (one ICCID, an IMSI per network profile) shows another IMSI when it changes
#: profile; a modem's `sims` row and the card's `sim_counters` row keep one IMSI each (the
#: last read), so the link of an earlier IMSI to the card was lost with the next read, and a
#: modem that read the card by that IMSI alone (in another box, say) counted its day from 0
#: (`tests/modempool/test_card_multi_imsi_counts.py`). Written with the `sims` row that names
#: both (`Sims.name_card`, `Sims.upsert`); filled at the upgrade from the links known then.
#: A daemon of version 22 still running writes none: its links are read in `sims` and
#: `sim_counters` as before.
CARD_IMSIS = """
CREATE TABLE IF NOT EXISTS card_imsis (
    iccid TEXT NOT NULL,
    imsi  TEXT NOT NULL,
    PRIMARY KEY (iccid, imsi)
);
CREATE INDEX IF NOT EXISTS card_imsis_by_imsi ON card_imsis (imsi);
INSERT INTO card_imsis (iccid, imsi) SELECT iccid, imsi FROM (
    SELECT iccid, imsi FROM sims WHERE iccid <> '' AND imsi <> ''
    UNION SELECT substr(sim_key, 7), imsi FROM sim_counters
    WHERE sim_key LIKE 'iccid:%' AND imsi <> '') AS pairs
WHERE NOT EXISTS (SELECT 1 FROM card_imsis AS known
                  WHERE known.iccid = pairs.iccid AND known.imsi = pairs.imsi);
"""

#: The pair of keys the `sims` row of modem `?` names, kept in `card_imsis` (both read).
LINK_CARD_IMSI = (
    "INSERT INTO card_imsis (iccid, imsi) SELECT iccid, imsi FROM sims WHERE name = ? "
    "AND iccid <> '' AND imsi <> '' ON CONFLICT DO NOTHING")

#: The IMSIs the spool knows for an ICCID (parameters: the ICCID, its counters key, the
#: ICCID): read beside it in a modem's `sims` row, kept with its counts (`sim_counters.imsi`,
#: where the modem that counted it may hold another card now), or read with it once
#: (`card_imsis`). The one statement of this link: the ambiguity rule's keys and the holds and
#: names of `spool.sims` (`card_imsis`) read it.
IMSIS_OF_ICCID = ("SELECT imsi FROM sims WHERE iccid = ? AND imsi <> '' "
                  "UNION SELECT imsi FROM sim_counters WHERE sim_key = ? AND imsi <> '' "
                  "UNION SELECT imsi FROM card_imsis WHERE iccid = ?")

#: The IMSI keys linked to an ICCID (parameters: as `IMSIS_OF_ICCID`).
_IMSIS_OF_ICCID = f"SELECT 'imsi:' || imsi FROM ({IMSIS_OF_ICCID}) AS known"
#: The ICCIDs linked to an IMSI (parameters: the IMSI, three times).
_ICCIDS_OF_IMSI = (
    "SELECT iccid FROM sims WHERE imsi = ? AND iccid <> '' "
    "UNION SELECT substr(sim_key, 7) FROM sim_counters WHERE imsi = ? "
    "AND sim_key LIKE 'iccid:%' UNION SELECT iccid FROM card_imsis WHERE imsi = ?")

#: A write (its card in column `writes.card`) under a key of the other form than the card's
#: (True: the card is an `imsi:` key) that the spool links to no card: for all it knows, the
#: card's own write under its other key.
UNLINKED = {
    False: ("writes.card LIKE 'imsi:%' AND NOT EXISTS (SELECT 1 FROM sims "
            "WHERE sims.imsi = substr(writes.card, 6) AND sims.iccid <> '') "
            "AND NOT EXISTS (SELECT 1 FROM sim_counters WHERE sim_counters.imsi = "
            "substr(writes.card, 6) AND sim_counters.sim_key LIKE 'iccid:%') "
            "AND NOT EXISTS (SELECT 1 FROM card_imsis WHERE card_imsis.imsi = "
            "substr(writes.card, 6))"),
    True: ("writes.card NOT LIKE 'imsi:%' AND NOT EXISTS (SELECT 1 FROM sims "
           "WHERE sims.iccid = writes.card AND sims.imsi <> '') "
           "AND NOT EXISTS (SELECT 1 FROM sim_counters WHERE sim_counters.sim_key = "
           "'iccid:' || writes.card AND sim_counters.imsi <> '') "
           "AND NOT EXISTS (SELECT 1 FROM card_imsis WHERE card_imsis.iccid = writes.card)"),
}


def is_imsi(card: str) -> bool:
    """Whether a write's card key is an IMSI (`imsi:<IMSI>`), not an ICCID."""
    return card.startswith(IMSI_PREFIX)


#: The keys of the other form linked to a card (True: the card is an `imsi:` key), as SQL of
#: one column; its parameters are `linked_keys_parameters(card)`.
LINKED_KEYS = {False: _IMSIS_OF_ICCID, True: _ICCIDS_OF_IMSI}


def linked_keys_parameters(card: str | None) -> tuple[str | None, ...]:
    """The parameters of `LINKED_KEYS[is_imsi(card)]` (None: a write of no card, linked to
    none)."""
    if card is None:
        return None, None, None
    if is_imsi(card):
        imsi = card[len(IMSI_PREFIX):]
        return imsi, imsi, imsi
    return card, f"iccid:{card}", card


def card_keys(conn: Any, card: str) -> tuple[str, ...]:
    """`card` (a write's card key) and every key of the other form the spool links to it, in
    `conn`'s transaction: the keys its writes stand under."""
    rows = conn.execute(LINKED_KEYS[is_imsi(card)], linked_keys_parameters(card)).fetchall()
    return (card, *sorted({row[0] for row in rows if row[0]} - {card}))

