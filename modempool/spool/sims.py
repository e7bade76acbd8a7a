"""SIM status and per-SIM send counters (`spool.sims`).

Counters are kept in the `sims` table so they survive restarts and are shared by every daemon
on the same database: `sent_today` counts for the local date in `day`, `sent_month` for the
local month in `month`; a new day or month starts them again from zero. The per-minute rate is
counted from `parts.sent_at` (a sliding minute).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from modempool.errors import PoolError
from modempool.spool.audit import AuditLog
from modempool.spool.card_links import IMSIS_OF_ICCID, LINK_CARD_IMSI
from modempool.spool.engine import Engine
from modempool.spool.model import to_text, utcnow
from modempool.spool.schema import SIM_COLUMNS


#: The key of the SIM card in the modem named by parameter {name} in `sim_counters`: its
#: ICCID, else its IMSI (a modem that reads no ICCID), else the modem's name.
SIM_KEY = ("coalesce((SELECT 'iccid:' || iccid FROM sims WHERE name = {name} AND iccid <> ''), "
           "(SELECT 'imsi:' || imsi FROM sims WHERE name = {name} AND imsi <> ''), "
           "'name:' || {name})")


#: The IMSI of the card in the modem named by {name} where that card is counted under its
#: ICCID (a modem that reads both): kept on the card's `sim_counters` row (schema version 21),
#: so that a modem that reads only the IMSI finds the card's day there even once the modem
#: that counted it holds another card (its `sims` row, the other link, then names that one).
CARD_IMSI = ("(SELECT imsi FROM sims WHERE name = {name} AND iccid <> '' AND imsi <> '')")

#: Schema step 21 (each engine's, in its OWN_STEPS: SQLite's ADD COLUMN has no IF NOT EXISTS):
#: the column, the rows counted so far given the IMSI a modem's row names beside their ICCID
#: now, and its index.
_IMSI_KEPT = (
    "UPDATE sim_counters SET imsi = (SELECT max(imsi) FROM sims WHERE imsi <> '' "
    "AND 'iccid:' || iccid = sim_counters.sim_key) WHERE sim_key LIKE 'iccid:%'",
    "CREATE INDEX IF NOT EXISTS sim_counters_by_imsi ON sim_counters (imsi) "
    "WHERE imsi IS NOT NULL")


def _sqlite_column(conn: Any) -> None:
    if "imsi" not in [row[1] for row in conn.execute("PRAGMA table_info(sim_counters)")]:
        conn.execute("ALTER TABLE sim_counters ADD COLUMN imsi TEXT")


SQLITE_STEP: tuple[Any, ...] = (_sqlite_column, *_IMSI_KEPT)
POSTGRES_STEP = ("ALTER TABLE sim_counters ADD COLUMN IF NOT EXISTS imsi TEXT", *_IMSI_KEPT)

#: A count of sent SMS added to a row of `table` (`sims` by modem, `sim_counters` by card):
#: a day's and a month's start again when they change. `{also}`: more columns and their values
#: (`sim_counters`' IMSI), `{also_set}` their update.
_COUNT = ("INSERT INTO {table} ({key}, sent_today, day, sent_month, month, sent_total, "
          "updated_at{also}) {rows} ON CONFLICT ({key}) DO UPDATE SET "
          "sent_today = CASE WHEN {table}.day = excluded.day "
          "THEN {table}.sent_today + :n ELSE :n END, day = excluded.day, "
          "sent_month = CASE WHEN {table}.month = excluded.month "
          "THEN {table}.sent_month + :n ELSE :n END, month = excluded.month, "
          "sent_total = {table}.sent_total + :n, updated_at = excluded.updated_at{also_set}")
_COUNTED = ":n, :day, :n, :month, :n, :counted_at"
_MODEM_COUNT = _COUNT.replace("{also}", "").replace("{also_set}", "")
_CARD_COUNT = _COUNT.replace("{also}", ", imsi").replace(
    "{also_set}", ", imsi = coalesce(excluded.imsi, sim_counters.imsi)")


class Sims:
    """SIM rows and counters. `spool.sims()` lists every SIM; `tz` is the local zone of the
    day and month counters (None: the system's)."""

    def __init__(self, engine: Engine, audit: AuditLog, tz: tzinfo | None) -> None:
        self.engine = engine
        self.audit = audit
        self.tz = tz

    def local_day_month(self, moment: datetime) -> tuple[str, str]:
        """The local day and month (text) that `moment` counts in (`tz`'s)."""
        local = moment.astimezone(self.tz)
        return local.date().isoformat(), local.strftime("%Y-%m")

    def add_sent(self, conn: Any, sim: str, n: int, moment: datetime) -> None:
        """Count `n` SMS for `sim` inside the transaction `conn`: for its modem (`sims`) and for
        the SIM card in it (`sim_counters`, by the ICCID the modem reported), each one atomic
        upsert, so that daemons on several hosts add up instead of overwriting each other."""
        if self.engine.writes_in_with:   # one round trip: it is in the path of a commit
            counting, values = self.counting("SELECT CAST(:sim AS text)", n, moment)
            conn.execute(f"WITH {counting} SELECT 1", {**values, "sim": sim})
            return
        values = {"sim": sim, **self._counted(n, moment)}
        conn.execute(_MODEM_COUNT.format(table="sims", key="name",
                                         rows=f"VALUES (:sim, {_COUNTED})"), values)
        conn.execute(_CARD_COUNT.format(
            table="sim_counters", key="sim_key",
            rows=f"VALUES ({SIM_KEY.format(name=':sim')}, {_COUNTED}, "
                 f"{CARD_IMSI.format(name=':sim')})"), values)

    def counting(self, sims: str, n: int, moment: datetime) -> tuple[str, dict[str, Any]]:
        """`add_sent` of `n` SMS for each SIM named by the query `sims` (one column), as the
        data-modifying CTEs of a statement on an engine that has them (`writes_in_with`), and
        their parameters: a confirmation recorded and counted in one round trip. The card's
        count reads the modem's, so the modem's row is written, and locked, first, as
        SQLite's two statements do."""
        modem = _MODEM_COUNT.format(table="sims", key="name",
                                    rows=f"SELECT sim, {_COUNTED} FROM ({sims}) AS counted (sim)")
        card = _CARD_COUNT.format(table="sim_counters", key="sim_key",
                                  rows=f"SELECT {SIM_KEY.format(name='modem.name')}, {_COUNTED}, "
                                       f"{CARD_IMSI.format(name='modem.name')} FROM modem")
        return (f"modem AS ({modem} RETURNING name), card AS ({card})",
                self._counted(n, moment))

    def _counted(self, n: int, moment: datetime) -> dict[str, Any]:
        day, month = self.local_day_month(moment)
        return {"n": n, "day": day, "month": month, "counted_at": to_text(moment)}

    def count_sent(self, sim: str, n: int = 1, now: datetime | None = None) -> None:
        """Add `n` SMS to the SIM's day and month counters.

        `mark_part_sent` already counts each part: call this only for SMS sent another way.
        """
        with self.engine.tx() as conn:
            self.add_sent(conn, sim, n, now or utcnow())

    def sent_counts(self, sim: str, now: datetime | None = None) -> tuple[int, int, int]:
        """SMS sent in the last minute by `sim`'s modem, and today and this month (local time)
        by the SIM card in it, whichever modem or host sent them (by its ICCID, where the modem
        reported one; else by the name `sim`).

        Today and this month also count the parts that may have gone out without their answer
        being recorded (marked writing, or ambiguous after a crash) by this SIM card, from any
        modem (`parts.card`; a part written with no card held, by the modems that last
        reported this SIM): a daemon that starts again, here or on another host, must not
        spend that quota a second time.
        """
        return self.sent_counts_of([sim], now)[sim]

    def sent_counts_of(self, sims: Sequence[str], now: datetime | None = None,
                       ) -> dict[str, tuple[int, int, int]]:
        """`sent_counts` of each of `sims`, in five statements however many SIMs (the
        dashboard and a scrape show a bank of 64: one round trip each would cost more than
        the answer)."""
        names = list(dict.fromkeys(sims))
        moment = now or utcnow()
        day, month = self.local_day_month(moment)
        local = moment.astimezone(self.tz)
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        among, values = self.engine.among("sim", names)
        minute = {row["sim"]: row["n"] for row in self.engine.rows(
            f"SELECT sim, count(*) AS n FROM parts WHERE {among} AND sent_at > ? "
            "AND sent_at <= ? GROUP BY sim",
            [*values, to_text(moment - timedelta(seconds=60)), to_text(moment)])}
        # every modem's parts of uncertain fate this month, by the card that wrote them (few:
        # the index holds only them)
        uncertain = self.engine.rows(
            "SELECT sim, coalesce(card, '') AS card, coalesce(sum(CASE WHEN writing_at >= "
            ":day_start THEN 1 ELSE 0 END), 0) AS today, count(*) AS month FROM parts "
            "WHERE state IN ('writing', 'ambiguous') AND writing_at >= :month_start "
            "AND writing_at <= :now GROUP BY sim, card",
            {"day_start": to_text(day_start), "month_start": to_text(day_start.replace(day=1)),
             "now": to_text(moment)})
        known = {row["name"]: (row["iccid"] or "", row["imsi"] or "") for row in self.engine.rows(
            "SELECT name, iccid, imsi FROM sims WHERE iccid <> '' OR imsi <> ''")}
        # a card is counted under its ICCID, or its IMSI where its modem read no ICCID: the
        # two keys of one card are read together (`card_keys` of each name), with every IMSI
        # read beside its ICCID (`card_imsis`: a multi-IMSI card's others)
        cards = self._cards({name: known.get(name, ("", "")) for name in names})
        # the modems that last reported this SIM's card (its ICCID or an IMSI), and itself
        modems = {name: {name} | {other for other, card in known.items()
                                  if set(cards[name]) & (set(card) - {""})}
                  for name in names}
        keys = {name: sorted({k for m in modems[name] for k in _card_keys(
            m, *known.get(m, ("", ""))) if m == name or not k.startswith("name:")}
            | {f"iccid:{key}" if key in cards[name][:1] else f"imsi:{key}"
               for key in cards[name] if key})
            for name in names}
        # and the rows of a card counted under its ICCID whose IMSI a modem here reads (the
        # modem that counted it may hold another card now: CARD_IMSI), or one read with it
        imsis = {name: sorted(({known.get(m, ("", ""))[1] for m in modems[name]}
                               | set(cards[name][1:])) - {""})
                 for name in names}
        among, values = self.engine.among("sim_key", sorted({k for ks in keys.values()
                                                             for k in ks}))
        by_imsi, imsi_values = self.engine.among("imsi", sorted({i for ii in imsis.values()
                                                                 for i in ii}))
        counters = {row["sim_key"]: row for row in self.engine.rows(
            "SELECT sim_key, imsi, sent_today, day, sent_month, month FROM sim_counters "
            f"WHERE {among} OR {by_imsi}", [*values, *imsi_values])}
        out = {}
        for name in names:
            rows = [row for key, row in counters.items()
                    if key in keys[name] or row["imsi"] in imsis[name]]
            # an uncertain part counts against the card that wrote it, wherever that card is
            # now (audit22 F5); one written with no card held, against its modem's name
            cards = {*keys[name], *(row["sim_key"] for row in rows),
                     *(f"imsi:{row['imsi']}" for row in rows if row["imsi"])}
            mine = [row for row in uncertain if _counters_key(row["card"]) in cards
                    or not row["card"] and row["sim"] in modems[name]]
            today = sum(int(row["today"]) for row in mine)
            this_month = sum(int(row["month"]) for row in mine)
            out[name] = (
                minute.get(name, 0),
                today + sum(r["sent_today"] for r in rows if r["day"] == day),
                this_month + sum(r["sent_month"] for r in rows if r["month"] == month),
            )
        return out

    def _cards(self, read: dict[str, tuple[str, str]]) -> dict[str, tuple[str, ...]]:
        """For each modem, the keys of the card its row names (`read`: its ICCID and IMSI, ''
        where not read), by every pair a modem read (`card_imsis`): (its ICCID or '', then
        every IMSI known for it). One statement for all of them."""
        iccids = sorted({iccid for iccid, _ in read.values() if iccid})
        imsis = sorted({imsi for _, imsi in read.values() if imsi})
        by_iccid, iccid_values = self.engine.among("iccid", iccids)
        by_imsi, imsi_values = self.engine.among("imsi", imsis)
        pairs = [(row[0], row[1]) for row in self.engine.rows(
            f"SELECT iccid, imsi FROM card_imsis WHERE {by_iccid} OR iccid IN "
            f"(SELECT iccid FROM card_imsis WHERE {by_imsi})", [*iccid_values, *imsi_values])
                 ] if iccids or imsis else []
        out = {}
        for name, (iccid, imsi) in read.items():
            if not iccid and imsi:   # the ICCID an IMSI read alone was read with
                iccid = next((i for i, m in pairs if m == imsi), "")
            linked = {m for i, m in pairs if i == iccid} if iccid else set()
            out[name] = (iccid, *sorted(linked | ({imsi} - {""})))
        return out

    def parts_per_minute(self, sims: Sequence[str], since: datetime) -> dict[datetime, int]:
        """Parts sent through `sims` since `since`, counted by the minute (UTC) they went out
        in; minutes with none are left out. By SIM, so the (sim, sent_at) index answers
        without reading older parts."""
        among, values = self.engine.among("sim", sims)
        out: dict[datetime, int] = {}
        for row in self.engine.rows(
                "SELECT substr(sent_at, 1, 16) AS minute, count(*) AS n FROM parts "
                f"WHERE {among} AND sent_at >= ? GROUP BY substr(sent_at, 1, 16)",
                [*values, to_text(since)]):
            try:
                minute = datetime.fromisoformat(row["minute"] + ":00+00:00")
            except ValueError:
                continue
            out[minute] = out.get(minute, 0) + row["n"]
        return out

    def upsert(self, name: str, **fields: Any) -> dict[str, Any]:
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
        with self.engine.tx() as conn:
            conn.execute(
                f"INSERT INTO sims ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)}) "
                f"ON CONFLICT (name) DO UPDATE SET {updates}",
                {"name": name, **values},
            )
            if {"iccid", "imsi"} & set(values):
                conn.execute(LINK_CARD_IMSI, (name,))
        return self.get(name)  # type: ignore[return-value]

    def name_card(self, name: str, iccid: str | None, imsi: str | None, *,
                  forget: bool = False) -> None:
        """Record the card a modem read (its ICCID and IMSI) in SIM `name`'s row. A key the
        modem failed to read (None) is kept where the other key shows the card is the same,
        and cleared where it is another card; a modem that read neither leaves the row as it
        is (while it is asked again: an SMS handed over again after a restart whose first
        read failed is still its card's), unless `forget`: once it gives up and serves
        unchecked, the card in it may be another, so the row names none and its sends count
        under the modem's name, not against the quota of the card it held before (rev21b M1).
        The row names the card its received SMS are deduplicated by (`inbound._Card`): a
        failed read must not make an SMS stored before look new. The card is the same too
        where the key read and the row's other key are one card's by what the spool knows
        (`_paired`): a card read by its ICCID alone, later by its IMSI alone, keeps its ICCID
        in the row, and so its dedupe key and its counts' key."""
        if not iccid and not imsi and not forget:
            return
        with self.engine.tx() as conn:
            row = conn.execute("SELECT iccid, imsi FROM sims WHERE name = ?",
                               (name,)).fetchone()
            if row is not None and _same_card(conn, row[0], row[1], iccid, imsi):
                iccid, imsi = iccid or row[0], imsi or row[1]
            conn.execute("INSERT INTO sims (name, iccid, imsi, updated_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET iccid = excluded.iccid, "
                         "imsi = excluded.imsi, updated_at = excluded.updated_at",
                         (name, iccid, imsi, to_text(utcnow())))
            if iccid and imsi:   # kept for good: the row names the card's next IMSI later
                conn.execute(LINK_CARD_IMSI, (name,))

    def card_imsis(self, iccid: str) -> list[str]:
        """The IMSIs the spool knows for the card with ICCID `iccid`: read beside it by a
        modem (any `sims` row naming both) or kept with its counts (`sim_counters.imsi`, where
        the modem that counted it may hold another card now). A modem that reads this ICCID
        and no IMSI holds the card by them too (`dispatch.cards`), so that it meets the hold
        of a clone read by its IMSI alone (rev21b L2)."""
        return sorted({row[0] for row in self.engine.rows(IMSIS_OF_ICCID,
                                                          (iccid, f"iccid:{iccid}", iccid))})

    def record_error(self, name: str, error: str) -> None:
        """Count one error against a SIM and keep it as `last_error`."""
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            conn.execute(
                "INSERT INTO sims (name, errors, last_error, updated_at) VALUES (?, 1, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET errors = sims.errors + 1, "
                "last_error = excluded.last_error, updated_at = excluded.updated_at",
                (name, error, now),
            )
            self.audit.record(conn, "sim-error", sim=name, detail=error, now=now)

    def get(self, name: str) -> dict[str, Any] | None:
        """One SIM's row, or None."""
        rows = self.engine.rows("SELECT * FROM sims WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def up_count(self) -> int:
        """SIMs in the state 'up', of every daemon on this spool (a killed daemon's stay up
        until it or another settles them)."""
        return self.engine.rows("SELECT count(*) FROM sims WHERE state = 'up'")[0][0]

    def __call__(self) -> list[dict[str, Any]]:
        """Every SIM row, by name."""
        return [dict(r) for r in self.engine.rows("SELECT * FROM sims ORDER BY name")]


def _same_card(conn: Any, row_iccid: str | None, row_imsi: str | None, iccid: str | None,
               imsi: str | None) -> bool:
    """Whether a modem's read (`iccid`, `imsi`, a key None where it failed) is the card its
    row names: a key in common, or one key read alone that the spool knows as one card's with
    the row's other key."""
    if (iccid and row_iccid == iccid) or (imsi and row_imsi == imsi):
        return True
    if imsi and not iccid and row_iccid:
        return _paired(conn, row_iccid, imsi)
    if iccid and not imsi and row_imsi:
        return _paired(conn, iccid, row_imsi)
    return False


def _paired(conn: Any, iccid: str, imsi: str) -> bool:
    """Whether the spool knows ICCID `iccid` and IMSI `imsi` as one card's (`card_imsis`)."""
    return conn.execute(f"SELECT 1 FROM ({IMSIS_OF_ICCID}) AS known WHERE imsi = ?",
                        (iccid, f"iccid:{iccid}", iccid, imsi)).fetchone() is not None


def _counters_key(card: str) -> str:
    """The `sim_counters` key of a write's card (`parts.card`: an ICCID, or `imsi:<IMSI>`)."""
    return card if not card or card.startswith("imsi:") else f"iccid:{card}"


def _card_keys(name: str, iccid: str, imsi: str) -> list[str]:
    """The `sim_counters` keys the card in modem `name` may be counted under (`SIM_KEY`)."""
    keys = [f"iccid:{iccid}"] if iccid else []
    keys += [f"imsi:{imsi}"] if imsi else []
    return keys or [f"name:{name}"]
