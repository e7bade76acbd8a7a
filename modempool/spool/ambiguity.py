"""Ambiguous messages settled by the network's evidence: a delivery report nobody expected.

A message is ambiguous when its PDU may have left without the modem's answer (a crash or a hung
modem between the write and ``+CMGS``): its part has no message reference, so its delivery
report matches nothing. Such a report still names the SIM card it came back to (the first key
of its modem's hold, stored with it since schema 22: `report_cards.py`), the modem it was
heard on, and the recipient, and carries the time the service centre took the message (SCTS).
The ambiguous parts to that recipient written shortly before that time by that card, on any
modem (and by its keys the spool links, below), and those its modem wrote with no card, are
the candidates; a report stored with no card (an older daemon's, a modem that held none) has
its modem name's (the wall clock only bounds this search: the proof below never reads it).
The writes read are those of the card that made the candidate (`parts.card`, from the modem's
hold at the marker), wherever it sat:
TP-MR is the card's counter and its reports come back to the modem the card sits in, not to a
modem name (a card moves between modems). A card's writes stand under its ICCID, or its
`imsi:` key where its modem read no ICCID: both keys the spool links are read as one card
(`card_links.py`); where it links none to the card, a write to the recipient in the report's
window under a key of the other form it links to no card either refuses the proof (it may be
the card's own). A candidate of a modem that held no card reads that
name's writes, where a card's write ends the walk. The writes are read in the order they were
made, every attempt of a part included (`write_history.py`: a resent part keeps the write it
overwrote; the order is not the wall clock's). The modem numbers its SUBMITs one after the
other (TS 23.040 9.2.3.6: the MS increments TP-MR for each), so the report's reference was taken
by a write after the card's last write before the candidate with a known reference, and before
its first write after the candidate with one; without a known one before (the card's first
write, or the walk ended), any reference may be another write's: nothing is proven. A card
that moved into the candidate's modem since may own the report too: a write of unknown outcome
to the recipient on that name after the candidate, by another card, refuses the proof, unless
the report came back to the candidate's card (its stored card: then it is no other card's). The
report proves the candidate went out when its reference lies there (within as many steps as
there are writes of unknown reference between), and every write between that may own a report
to that recipient is one of the candidate part's own attempts (a part ambiguous twice went out
by either); a write of unknown outcome to that recipient between (another message's, or an
attempt overwritten since), or any write after the candidate whose reference is unknown and
which was not refused (in flight, ambiguous: had the candidate never left, the modem gave it
the report's reference), leaves it unproven. A refused write (``+CMS ERROR``, or nothing
written: the part 'failed') owns no report but may have used a reference, so it is stepped over
and counted. Exactly one candidate proven: the part becomes sent with the report's reference
(none when an earlier attempt of the part may have taken it: the SIM's next proofs would read
it as the latest write's), the message sent (then delivered by the report itself) once all its
parts are out, and the evidence goes to the message's events.
Anything less certain stays ambiguous. A report that came while a later write's outcome was
unknown is read again once it is (`settle_before`, for the card's earlier parts on any modem):
that write's report matched, its record made after its report came, or its refusal. A part
found ambiguous reads the unmatched reports that came back to its card, and those heard with
no card on its modem. All SQL of this rule is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from modempool.spool.audit import AuditLog
from modempool.spool.card_links import (LINKED_KEYS, UNLINKED, card_keys, is_imsi,
                                        linked_keys_parameters)
from modempool.spool.model import from_text, to_text
from modempool.spool.write_history import WRITE_ORDER

#: How long after the write the service centre's stamp may come (a slow network, a modem that
#: hung after sending), and how far before it (host and service centre clocks differ a little;
#: the stamp has whole seconds).
WINDOW_AFTER = timedelta(seconds=120)
CLOCK_SLACK = timedelta(seconds=10)

#: The ambiguous parts to a recipient written in a window, of a modem name
#: (`_candidates("sim")`: a report that names no card) or of any of `keys` cards on any modem
#: and those the report's modem wrote with no card (`_candidates("card", keys)`): the report's
#: candidates (part id, message, part number, written at, place, the card that wrote it, its
#: modem).
_CANDIDATE = (
    f"SELECT parts.id, parts.message_id, parts.seq, parts.writing_at, {WRITE_ORDER} AS place, "
    "parts.card, parts.sim FROM parts JOIN messages ON messages.id = parts.message_id "
    "WHERE {where} AND parts.state = 'ambiguous' AND messages.state = 'ambiguous' "
    "AND messages.to_number = ? AND parts.writing_at >= ? AND parts.writing_at <= ?")


def _by_card_or_sim(select: str, card: str, sim: str, order: str, keys: int) -> str:
    """`select` (its `{where}` to fill) of a modem name (`keys` 0: parameters the name, then
    the select's own) or of any of `keys` cards and, with no card, that modem name's
    (parameters: the keys and the select's own, then the name and the select's own)."""
    if not keys:
        return select.format(where=f"{sim} = ?") + f" ORDER BY {order}"
    return (select.format(where=f"{card} IN ({', '.join('?' * keys)})") + " UNION ALL "
            + select.format(where=f"{card} IS NULL AND {sim} = ?") + f" ORDER BY {order}")


@cache
def _candidates(by: str, keys: int = 0) -> str:
    """The candidates' statement (see `_CANDIDATE`); parameters: the modem name, or the `keys`
    then the modem name, each followed by the recipient and the window."""
    return _by_card_or_sim(_CANDIDATE, "parts.card", "parts.sim", "place",
                           0 if by == "sim" else keys)


def _writes(by: str, keys: int = 1) -> str:
    """Writes in the order they were made: each part's latest (`parts`) and those a new attempt
    overwrote (`earlier_writes`), by their place (`write_history.py`), with the part they belong
    to, its recipient, the card and the time it was written. `by` 'card': those of any of
    `keys` card keys; 'sim': of a SIM name; 'to': every write to a recipient."""
    marks = ", ".join("?" * keys)
    where = {"card": f"{{0}}.card IN ({marks})", "sim": f"{{0}}.sim IN ({marks})",
             "to": "messages.to_number = ?"}[by]
    return (f"SELECT {WRITE_ORDER} AS place, parts.message_id AS message_id, parts.seq AS seq, "
            "parts.state AS state, parts.message_reference AS message_reference, "
            "messages.to_number AS to_number, parts.card AS card, "
            "parts.writing_at AS writing_at FROM parts "
            f"JOIN messages ON messages.id = parts.message_id WHERE {where.format('parts')} "
            "UNION ALL SELECT earlier.id, earlier.message_id, earlier.seq, earlier.state, "
            "earlier.message_reference, messages.to_number, earlier.card, earlier.writing_at "
            "FROM earlier_writes AS earlier "
            f"JOIN messages ON messages.id = earlier.message_id WHERE {where.format('earlier')}")


#: How many writes the proof reads on either side: past a whole round of references (TP-MR is
#: 8 bits) of unknown ones, nothing can be told.
_REACH = 257


@cache
def _walk(by: str, direction: str, keys: int) -> str:
    """The writes of `keys` cards (or SIM names) before (`direction` '<') or after ('>') a
    place, nearest first."""
    return ("SELECT message_id, seq, state, message_reference, to_number, card "
            f"FROM ({_writes(by, keys)}) AS writes WHERE place {direction} ? ORDER BY place "
            f"{'DESC' if direction == '<' else ''} LIMIT {_REACH}")


@cache
def _rival_on_name(keys: int) -> str:
    """A write on the candidate's modem NAME after it, by another card than the `keys` of its
    own (or a modem that read none), to the recipient, whose outcome is unknown, made before the
    report's stamp could be: the card that moved into that modem may own the report (rev21a
    H1). The card walk never reads it."""
    return (f"SELECT 1 FROM ({_writes('sim')}) AS writes WHERE place > ? AND to_number = ? "
            "AND message_reference IS NULL AND state <> 'failed' "
            f"AND (card IS NULL OR card NOT IN ({', '.join('?' * keys)})) "
            "AND writing_at <= ? LIMIT 1")


#: A write to the recipient in the report's window (any outcome but a refusal: a report heard
#: on another modem name matches no write with a known reference either) under a key of the
#: other form that the spool links to no card (`card_links.UNLINKED`, by whether the candidate's
#: card is an `imsi:` key): it may be the card's own write under its other key, in or out of its
#: walk (audit22 F3), even where the card has links of that form (a multi-IMSI card's new
#: IMSI; rev22b R2).
_UNLINKED_RIVAL = {
    imsi: (f"SELECT 1 FROM ({_writes('to')}) AS writes WHERE state <> 'failed' "
           f"AND writing_at >= ? AND writing_at <= ? AND {UNLINKED[imsi]} LIMIT 1")
    for imsi in (False, True)}
_SETTLE_PART = (
    "UPDATE parts SET state = 'sent', message_reference = ?, sent_at = writing_at "
    "WHERE id = ? AND state = 'ambiguous'")
_SETTLE_MESSAGE = (
    "UPDATE messages SET state = 'sent', sent_at = ?, error = NULL, updated_at = ? "
    "WHERE id = ? AND state = 'ambiguous' AND (SELECT count(*) FROM parts "
    "  WHERE parts.message_id = messages.id AND parts.state IN ('sent', 'delivered', "
    "  'undelivered')) = coalesce(parts_total, 1)")


_WRITTEN = (
    "SELECT parts.sim, parts.writing_at, messages.to_number, parts.card FROM parts "
    "JOIN messages ON messages.id = parts.message_id "
    "WHERE parts.message_id = ? AND parts.state = 'ambiguous' ORDER BY parts.seq DESC LIMIT 1")
#: The reports that matched no part, to a recipient, stored in a window (id, the modem and card
#: it was heard by, reference, status, delivered, final, received at): those heard on a modem
#: name (`_unmatched_reports("sim")`: for a part written with no card), or those that came
#: back to any of `keys` cards and those heard on the part's modem name with no card
#: (`_unmatched_reports("card", keys)`).
_UNMATCHED_REPORT = (
    "SELECT id, sim, card, message_reference, status, delivered, final, received_at "
    "FROM delivery_reports WHERE part_id IS NULL AND {where} AND recipient = ? "
    "AND received_at >= ? AND received_at <= ?")


@cache
def _unmatched_reports(by: str, keys: int = 0) -> str:
    """The statement of `_UNMATCHED_REPORT`; parameters as `_candidates`'."""
    return _by_card_or_sim(_UNMATCHED_REPORT, "card", "sim", "id", 0 if by == "sim" else keys)


#: The ambiguous parts written before a place since a time (parameters: the place, the time,
#: then what `where` reads), each select on a partial index of the ambiguous parts.
_EARLIER = ("SELECT DISTINCT parts.message_id FROM parts "
            "JOIN messages ON messages.id = parts.message_id "
            "WHERE parts.state = 'ambiguous' AND messages.state = 'ambiguous' "
            f"AND {WRITE_ORDER} < ? AND parts.writing_at >= ? AND {{where}}")
#: Those of a modem name (parameters: place, time, name) and, for a card, of any of its keys
#: on any modem (place, time, the card, then `linked_keys_parameters` of it).
_EARLIER_AMBIGUOUS = {
    None: _EARLIER.format(where="parts.sim = ?") + " ORDER BY 1",
    **{imsi: (_EARLIER.format(where="parts.sim = ?") + " UNION " + _EARLIER.format(
        where=f"parts.card IN (SELECT CAST(? AS TEXT) UNION {LINKED_KEYS[imsi]})")
        + " ORDER BY 1") for imsi in (False, True)}}
_LINK_REPORT = "UPDATE delivery_reports SET part_id = ?, message_id = ? WHERE id = ?"


@dataclass(frozen=True, slots=True)
class _Proof:
    """What a SIM's writes around a candidate say of a report: whether it is the candidate
    part's; whether its latest write is the one that took the report's reference (`own`: not
    when an earlier attempt of the part may have); and the reference the modem would have given
    the candidate (when its previous write's is known and nothing of unknown reference came
    between)."""

    proven: bool
    own: bool = False
    expected: int | None = None


def _prove(conn: Any, sim: str, card: str | None, recipient: str, message_reference: int,
           part: tuple[Any, Any], place: int, window: tuple[str, str], *,
           heard_by_card: bool = False) -> _Proof:
    """Whether the report `message_reference` to `recipient` is that of the part `part`
    (message id, seq) whose latest write is at `place` on `sim`, made by `card` (None: a
    modem that held none; see the module's docstring); `window`: the earliest and the latest a
    write that took the report's reference may have been made. `heard_by_card`: the report
    came back to `card` (its stored card is one of the card's keys), so no other card's write
    on `sim` can own it."""
    if card is not None:
        keys = card_keys(conn, card)  # every key the card's writes may stand under
        if not heard_by_card and conn.execute(
                _rival_on_name(len(keys)),
                (sim, sim, place, recipient, *keys, window[1])).fetchone() is not None:
            return _Proof(False)     # another card in that modem since may own the report
        if conn.execute(_UNLINKED_RIVAL[is_imsi(card)],
                        (recipient, recipient, *window)).fetchone() is not None:
            return _Proof(False)     # a key of the card the spool never linked: may be its own
    # A card's writes wherever it sat; without a card, the name's, where a write of a card is
    # another card's: the walk ends there, what lies beyond is unknown.
    walk, keys = ("card", keys) if card is not None else ("sim", (sim,))
    own_cards: tuple[str | None, ...] = keys if card is not None else (None,)
    unknown = 0                      # writes of unknown reference between the known ones
    own = True                       # no earlier attempt of the part among them
    before: int | None = None        # the last known reference before the candidate
    rows = conn.execute(_walk(walk, "<", len(keys)), (*keys, *keys, place)).fetchall()
    for message_id, seq, state, reference, to, write_card in rows:
        if write_card not in own_cards:
            break                    # another card's write: none known before, refused below
        if reference is not None:
            before = int(reference)
            break
        if (message_id, seq) != part and state != "failed" and to == recipient:
            return _Proof(False)     # its write may be the report's
        own = own and (message_id, seq) != part
        unknown += 1
    if before is None:
        return _Proof(False)         # no known reference of the card before: any may be it
    after: int | None = None         # the first known reference after it
    rows = conn.execute(_walk(walk, ">", len(keys)), (*keys, *keys, place)).fetchall()
    for _message_id, _seq, state, reference, _to, write_card in rows:
        if write_card not in own_cards:
            return _Proof(False)     # a card's write on a name of none: not one counter
        if reference is not None:
            after = int(reference)
            break
        if state != "failed":
            return _Proof(False)     # it may have taken the reference, had this part not left
        unknown += 1
    else:
        if len(rows) == _REACH:
            return _Proof(False)
    span = unknown + 1
    if span >= 256:
        return _Proof(False)         # a whole round of references: anything may be anyone's
    if not 1 <= (message_reference - before) % 256 <= span:
        return _Proof(False)         # taken before: another write's report
    if after is not None and not 1 <= (after - message_reference) % 256 <= span:
        return _Proof(False)         # taken after the candidate, or is the next write's own
    expected = (before + 1) % 256 if not unknown else None
    return _Proof(True, own, expected)


def settle_by_report(conn: Any, audit: AuditLog, *, sim: str | None, recipient: str | None,
                     message_reference: int, network_time: datetime, now: str,
                     count_sent: Callable[[Any, str, int, datetime], None] | None = None,
                     card: str | None = None) -> tuple[int, int] | None:
    """The (part id, message id) an unmatched report proves was sent, settled in `conn`'s
    transaction; None when the evidence is not conclusive. `card`: the key of the card the
    report came back to (`report_cards.py`), whose parts on any modem are its candidates,
    beside those its modem `sim` wrote with no card; None: `sim`'s parts. `count_sent(conn,
    sim, n, when)` counts the proven part against the SIM's day and month, as a confirmed send
    is."""
    if sim is None or not recipient:
        return None
    window = (recipient, to_text(network_time - WINDOW_AFTER),
              to_text(network_time + CLOCK_SLACK))
    keys = card_keys(conn, card) if card is not None else ()
    found = conn.execute(_candidates("card", len(keys)), (*keys, *window, sim, *window)) \
        if card is not None else conn.execute(_candidates("sim"), (sim, *window))
    proven = []
    for part_id, message_id, seq, written_at, place, written_by, written_on in found.fetchall():
        proof = _prove(conn, written_on, written_by, recipient, message_reference,
                       (message_id, seq), place, window[1:],
                       heard_by_card=written_by is not None and written_by in keys)
        if proof.proven:
            proven.append((part_id, message_id, written_at, proof))
    if len(proven) != 1:
        return None  # none proven, or not told apart
    part_id, message_id, written_at, proof = proven[0]
    # The part went out; its row keeps the reference only when its latest write took it, as
    # the SIM's next proofs read it as that write's (unknown otherwise: it may be an earlier
    # attempt's, the latest one's the next).
    taken = message_reference if proof.own else None
    if conn.execute(_SETTLE_PART, (taken, part_id)).rowcount == 1 and count_sent:
        count_sent(conn, sim, 1, from_text(written_at))
    settled = conn.execute(_SETTLE_MESSAGE, (written_at, now, message_id)).rowcount == 1
    audit.record(conn, "ambiguity-resolved" if settled else "ambiguity-evidence", message_id,
                 sim, {"evidence": "delivery report", "sim": sim, "recipient": recipient,
                       "message_reference": message_reference,
                       "expected_reference": proof.expected,
                       "network_time": to_text(network_time), "written_at": written_at,
                       "part_id": part_id, **({"card": card} if card is not None else {})},
                 now)
    return part_id, message_id


def settle_by_stored_reports(conn: Any, audit: AuditLog, message_id: int, now: str,
                             count_sent: Callable[[Any, str, int, datetime], None] | None = None,
                             ) -> bool:
    """A message just found ambiguous whose report came first (the modem's ``+CMGS`` answer
    was lost but its ``+CDS`` was not; or a killed daemon stored the report before recovery
    ran): the unmatched reports already stored may settle it, by the same rule. True when it
    was settled; a report that proves another ambiguous message settles that one."""
    from modempool.spool.verdicts import apply_report

    row = conn.execute(_WRITTEN, (message_id,)).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return False
    sim, written_at, to, card = row[0], row[1], row[2], row[3]
    written = from_text(written_at)
    assert written is not None
    window = (to, to_text(written - CLOCK_SLACK), to_text(written + WINDOW_AFTER))
    if card is None:
        reports = conn.execute(_unmatched_reports("sim"), (sim, *window)).fetchall()
    else:   # those that came back to its card, wherever it sat; and those of no card
        keys = card_keys(conn, card)
        reports = conn.execute(_unmatched_reports("card", len(keys)),
                               (*keys, *window, sim, *window)).fetchall()
    for report_id, heard_on, heard_by, reference, status, delivered, final, received_at \
            in reports:
        found = settle_by_report(conn, audit, sim=heard_on, recipient=to,
                                 message_reference=reference, network_time=from_text(received_at),
                                 now=now, count_sent=count_sent, card=heard_by)
        if found is None:
            continue
        conn.execute(_LINK_REPORT, (found[0], found[1], report_id))
        apply_report(conn, audit, part_id=found[0], message_id=found[1], sim=heard_on,
                     status=status, delivered=bool(delivered), final=bool(final), now=now)
        if found[1] == message_id:
            return True
    return False


def settle_before(conn: Any, audit: AuditLog, sim: str | None, part_id: int, now: str,
                  count_sent: Callable[[Any, str, int, datetime], None] | None = None) -> None:
    """Part `part_id` of `sim` just got its outcome (its report matched, its record came after
    its report, or it was refused): the ambiguous parts written shortly before it whose stored
    report waited for that outcome may be settled now, by the same rule."""
    if sim is None:
        return
    row = conn.execute(f"SELECT writing_at, {WRITE_ORDER}, card FROM parts WHERE id = ?",
                       (part_id,)).fetchone()
    if row is None or row[0] is None:
        return
    written = from_text(row[0])
    assert written is not None
    card = row[2]   # its card's earlier parts too, on any modem: its walk reads this write
    since = (row[1], to_text(written - WINDOW_AFTER))
    found = conn.execute(_EARLIER_AMBIGUOUS[None], (*since, sim)) if card is None else \
        conn.execute(_EARLIER_AMBIGUOUS[is_imsi(card)],
                     (*since, sim, *since, card, *linked_keys_parameters(card)))
    for (message_id,) in found.fetchall():
        settle_by_stored_reports(conn, audit, message_id, now, count_sent)
