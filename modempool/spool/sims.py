"""SIM status, per-SIM send counters and the audit log (mixed into `Spool`).

Counters are kept in the `sims` table so they survive restarts: `sent_today` counts for the
local date in `day`, `sent_month` for the local month in `month`; a new day or month starts
them again from zero. The per-minute rate is counted from `parts.sent_at` (a sliding minute).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modempool.errors import PoolError
from modempool.spool.model import to_text, utcnow
from modempool.spool.schema import SIM_COLUMNS

if TYPE_CHECKING:
    from modempool.spool import Spool


class SimsMixin:
    """SIM rows, counters, events."""

    def _local_day_month(self: Spool, moment: datetime) -> tuple[str, str]:
        local = moment.astimezone(self.tz)
        return local.date().isoformat(), local.strftime("%Y-%m")

    def _count_sent(self: Spool, conn: sqlite3.Connection, sim: str, n: int, moment: datetime) -> None:
        day, month = self._local_day_month(moment)
        conn.execute(
            "INSERT INTO sims (name, sent_today, day, sent_month, month, sent_total, updated_at) "
            "VALUES (:sim, :n, :day, :n, :month, :n, :now) "
            "ON CONFLICT (name) DO UPDATE SET "
            "sent_today = CASE WHEN day = excluded.day THEN sent_today + :n ELSE :n END, "
            "day = excluded.day, "
            "sent_month = CASE WHEN month = excluded.month THEN sent_month + :n ELSE :n END, "
            "month = excluded.month, sent_total = sent_total + :n, updated_at = excluded.updated_at",
            {"sim": sim, "n": n, "day": day, "month": month, "now": to_text(moment)},
        )

    def count_sent(self: Spool, sim: str, n: int = 1, now: datetime | None = None) -> None:
        """Add `n` SMS to the SIM's day and month counters.

        `mark_part_sent` already counts each part: call this only for SMS sent another way.
        """
        with self._tx() as conn:
            self._count_sent(conn, sim, n, now or utcnow())

    def sent_counts(self: Spool, sim: str, now: datetime | None = None) -> tuple[int, int, int]:
        """SMS sent by `sim` in the last minute, today and this month (local time)."""
        moment = now or utcnow()
        day, month = self._local_day_month(moment)
        minute = self._rows(
            "SELECT count(*) AS n FROM parts WHERE sim = ? AND sent_at > ? AND sent_at <= ?",
            (sim, to_text(moment - timedelta(seconds=60)), to_text(moment)),
        )[0]["n"]
        rows = self._rows("SELECT sent_today, day, sent_month, month FROM sims WHERE name = ?", (sim,))
        if not rows:
            return minute, 0, 0
        row = rows[0]
        return (
            minute,
            row["sent_today"] if row["day"] == day else 0,
            row["sent_month"] if row["month"] == month else 0,
        )

    def upsert_sim(self: Spool, name: str, **fields: Any) -> dict[str, Any]:
        """Create or update a SIM's row (port, imsi, operator, state, signal, ...).

        Counters are left alone unless given. Returns the row.
        """
        unknown = set(fields) - SIM_COLUMNS
        if unknown:
            raise PoolError(f"unknown sims column(s): {', '.join(sorted(unknown))}")
        values = {k: to_text(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        values["updated_at"] = to_text(utcnow())
        columns = ["name", *values]
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO sims ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)}) "
                f"ON CONFLICT (name) DO UPDATE SET {updates}",
                {"name": name, **values},
            )
        return self.sim(name)  # type: ignore[return-value]

    def record_sim_error(self: Spool, name: str, error: str) -> None:
        """Count one error against a SIM and keep it as `last_error`."""
        now = to_text(utcnow())
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sims (name, errors, last_error, updated_at) VALUES (?, 1, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET errors = errors + 1, "
                "last_error = excluded.last_error, updated_at = excluded.updated_at",
                (name, error, now),
            )
            self._event("sim-error", sim=name, detail=error, now=now)

    def sim(self: Spool, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM sims WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def sims(self: Spool) -> list[dict[str, Any]]:
        """Every SIM row, by name."""
        return [dict(r) for r in self._rows("SELECT * FROM sims ORDER BY name")]

    def record_event(
        self: Spool,
        kind: str,
        *,
        message_id: int | None = None,
        sim: str | None = None,
        detail: Any = None,
        now: datetime | None = None,
    ) -> None:
        """Append to the audit log (`events`); `detail` may be text or JSON-able data."""
        with self._tx():
            self._event(kind, message_id, sim, detail, to_text(now) if now else None)


def event_detail(row: dict[str, Any]) -> Any:
    """The `detail` of an event row, decoded when it is JSON."""
    text = row.get("detail")
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
