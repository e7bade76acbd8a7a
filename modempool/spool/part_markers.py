"""Part markers' SQL: the row that says a part is about to be written to the modem, and the
lease (and card hold) check it is written under. Apart from `claims.py` because the
dispatcher's markers are written from three places: alone (`Claims.mark_part_writing`), with
the SIM's last record (`records.py`) and in a batch of markings (`record_batches.py`)."""

from __future__ import annotations

from typing import Any

from modempool.spool.model import LeaseLost, to_text, utcnow

#: A part marked writing (its rows: message, seq, total, attempt, SIM, 'writing', time, the
#: card of the modem's hold or NULL), over what an earlier attempt left of it.
WRITING = ("INSERT INTO parts (message_id, seq, total, attempt, sim, state, writing_at, card) "
           "{rows} ON CONFLICT (message_id, seq) DO UPDATE SET total = excluded.total, "
           "attempt = excluded.attempt, sim = excluded.sim, card = excluded.card, "
           "state = 'writing', "
           "writing_at = excluded.writing_at, reference = NULL, message_reference = NULL, "
           "sent_at = NULL, status = NULL, status_at = NULL")


def marker_ctes(message_id: int, seq: int, total: int | None, lease_owner: str | None,
                hold: tuple[str, str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """`mark_part_writing` as the CTEs `leased` (one statement checks the lease, and `hold`
    where the modem holds a card, locks the message and keeps its part count) and `marked`
    (the part's row, with the attempt and SIM it returns), for an engine with writes in a
    WITH, and their parameters."""
    marked = WRITING.format(rows="SELECT :marker_id, :marker_seq, :marker_total, attempts, "
                                 "sim, 'writing', :marker_at, :marker_card FROM leased")
    values = {"marker_id": message_id, "marker_seq": seq, "marker_total": total,
              "marker_owner": lease_owner, "marker_at": to_text(utcnow()), "marker_card": None}
    if hold is not None:
        values.update(zip(("marker_card", "marker_holder", "marker_modem"), hold))
    return (f"leased AS ({lease_check(lease_owner, hold is not None, HOLD_SHARED)}), "
            f"marked AS ({marked} RETURNING 1)", values)


#: The hold's row share-locked by the marker (PostgreSQL: `marker_ctes`): a take of the card
#: (its FOR UPDATE) waits for a marker under way to commit, so the taker's counts, read after
#: its take, include that part; a marker that comes after a take waits for it and finds the
#: hold gone. Read from a snapshot alone, a take committed between the marker's start and its
#: commit let the taker count one part short (quota + 1). SQLite's writers take turns.
HOLD_SHARED = " FOR SHARE"


def lease_check(lease_owner: str | None, held: bool = False, lock: str = "") -> str:
    """The marker's lease check: one statement checks the lease (and with `held` the card
    hold, a probe of `sim_holders`' key, `lock`ed), locks the message and keeps its part
    count; the part's row takes the attempt and SIM it returns (`marker_ctes`' names)."""
    owner = " AND lease_owner = :marker_owner" if lease_owner is not None else ""
    if held:
        owner += (" AND EXISTS (SELECT 1 FROM sim_holders WHERE iccid = :marker_card "
                  f"AND owner = :marker_holder AND modem = :marker_modem{lock})")
    return ("UPDATE messages SET parts_total = coalesce(:marker_total, parts_total) "
            f"WHERE id = :marker_id AND state = 'sending'{owner} RETURNING attempts, sim")


def not_leased(message_id: int, lease_owner: str | None) -> LeaseLost:
    """The LeaseLost of a marker whose message is not (or no longer) `lease_owner`'s."""
    return LeaseLost(f"message {message_id} is not being sent by {lease_owner or 'anyone'}")
