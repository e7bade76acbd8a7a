"""The bank's status as `Pool.status()` answers it: the daemon, each SIM against its quotas,
the queue by state, the campaigns running or paused, the received SMS whose hooks wait."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from modempool.dispatch.liveness import DaemonLiveness, running_rows
from modempool.operator.campaign_report import Progress
from modempool.operator.hooks import HANDLER_STEPS
from modempool.spool import MessageState
from modempool.spool.model import from_text, utcnow

if TYPE_CHECKING:
    from modempool.config import Config
    from modempool.spool import Spool

__all__ = ["SimStatus", "Status", "read_status", "signal_bars"]


@dataclass(frozen=True, slots=True)
class SimStatus:
    """One SIM as the spool last saw it, with what it sent against its quotas."""

    name: str
    state: str = "unknown"
    port: str | None = None
    signal: int | None = None
    operator: str | None = None
    errors: int = 0
    last_error: str | None = None
    sent_minute: int = 0
    sent_today: int = 0
    sent_month: int = 0
    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None
    details: dict[str, Any] = field(default_factory=dict)   # the rest of the spool's SIM row

    @property
    def bars(self) -> int:
        """The signal as 0-4 bars, as a phone shows it (`signal` is in dBm; None: no bars)."""
        return signal_bars(self.signal)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.details)
        out.update({name: getattr(self, name) for name in self.__dataclass_fields__
                    if name != "details"})
        out["bars"] = self.bars
        return out


def signal_bars(dbm: int | None) -> int:
    """Bars for a signal in dBm as the spool keeps it: the modem's CSQ bars (TS 27.007 8.5,
    -113 dBm is rssi 0, 2 dB a step), none when unknown."""
    from at_commands import csq_to_bars

    return 0 if dbm is None else csq_to_bars(min(31, max(0, (dbm + 113) // 2)))


@dataclass(frozen=True, slots=True)
class RunningDaemon:
    """One daemon that runs on the spool now (several hosts may share a PostgreSQL queue)."""

    host: str
    pid: int
    since: datetime | None        # its start
    heartbeat_age: float | None   # seconds since its last heartbeat

    def describe(self, tz: tzinfo | None = None) -> str:
        from modempool.when import local_text

        age = "" if self.heartbeat_age is None else f", heartbeat {self.heartbeat_age:.0f} s ago"
        return (f"daemon on {self.host} (pid {self.pid}) running since "
                f"{local_text(self.since, tz) or '?'}{age}")

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid,
                "since": self.since.isoformat() if self.since else None,
                "heartbeat_age": self.heartbeat_age}


def running_daemons(spool: Any, stale_after: float, *,
                    now: datetime | None = None) -> tuple[RunningDaemon, ...]:
    """Every daemon alive on `spool` by the one rule (`liveness.running_rows`), oldest first."""
    moment = now or utcnow()
    found = []
    for row in running_rows(spool, now=moment, stale_after=stale_after):
        heartbeat = from_text(row.get("heartbeat_at"))
        found.append(RunningDaemon(
            str(row.get("host") or "?"), int(row.get("pid") or 0),
            from_text(row.get("started_at")),
            None if heartbeat is None else max(0.0, (moment - heartbeat).total_seconds())))
    return tuple(sorted(found, key=lambda d: (d.since is None, d.since or moment, d.host)))


@dataclass(frozen=True, slots=True)
class Status:
    """Every SIM, the queue by state and the campaigns running or paused."""

    daemon: DaemonLiveness
    sims: tuple[SimStatus, ...]
    queue: dict[str, int]
    campaigns: tuple[Progress, ...]
    spool: str
    daemons: tuple[RunningDaemon, ...] = ()   # each one running now
    # Received SMS whose handlers (opt-out, auto-reply, forwarding's record) have not all run
    # yet (`spool/inbound_hooks.py`), and seconds since the oldest of them was stored; and
    # those whose forward command is running or retrying (its last step), likewise.
    hooks_pending: int = 0
    hooks_oldest_age: float | None = None
    commands_pending: int = 0
    commands_oldest_age: float | None = None

    @property
    def queue_depth(self) -> int:
        return self.queue.get(MessageState.QUEUED.value, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"daemon": self.daemon.to_dict(), "sims": [s.to_dict() for s in self.sims], "queue": dict(self.queue),
                "queue_depth": self.queue_depth, "campaigns": [c.to_dict() for c in self.campaigns],
                "spool": self.spool, "daemons": [d.to_dict() for d in self.daemons],
                "hooks_pending": self.hooks_pending, "hooks_oldest_age": self.hooks_oldest_age,
                "commands_pending": self.commands_pending,
                "commands_oldest_age": self.commands_oldest_age}

    @property
    def hooks_late(self) -> bool:
        """Whether an SMS has waited for its handlers `LATE` seconds or more: something holds
        them up (the database, a GRANT, a dead daemon not taken over yet)."""
        return late(self.hooks_pending, self.hooks_oldest_age)

    @property
    def commands_late(self) -> bool:
        """Whether a forward command has run or retried for an SMS `LATE` seconds or more."""
        return late(self.commands_pending, self.commands_oldest_age)

    def describe_hooks(self) -> list[str]:
        """Lines on the received SMS whose handlers wait, and on the forward commands running
        or retrying, each once its oldest is `LATE` (a healthy bank passes an SMS's handlers
        in milliseconds and shows neither)."""
        lines = []
        if self.hooks_late:
            lines.append(f"hooks pending for {self.hooks_pending} received SMS (opt-out, "
                         f"auto-reply, forwarding), the oldest stored "
                         f"{_ago(self.hooks_oldest_age)} ago")
        if self.commands_late:
            lines.append(f"forward command running or retrying for {self.commands_pending} "
                         f"received SMS, the oldest stored {_ago(self.commands_oldest_age)} ago")
        return lines


#: Seconds an SMS waits for its handlers (or its forward command) before `status` says so: a
#: snapshot of a healthy bank at 60 SMS a second finds a few SMS between their store and their
#: handlers' commit, none as old as this.
LATE = 60.0


def late(count: int, oldest_age: float | None) -> bool:
    """Whether `count` SMS wait and the oldest has waited `LATE` seconds or more."""
    return bool(count) and (oldest_age or 0.0) >= LATE


def _ago(age: float | None) -> str:
    age = age or 0.0
    return (f"{age:.0f} s" if age < 120 else f"{age / 60:.0f} min" if age < 7200
            else f"{age / 3600:.0f} h")


def read_status(spool: Spool, config: Config) -> Status:
    """Whether the daemon runs, every configured or seen SIM (with no daemon running, a SIM's
    state is unknown), the queue, the campaigns running or paused, and the received SMS whose
    hooks wait (`Pool.status`)."""
    from modempool.dispatch.liveness import current_sim_state, daemon_liveness
    from modempool.operator.campaign_report import all_progress

    liveness = daemon_liveness(spool, stale_after=config.silent_after)
    known = {row["name"]: row for row in spool.sims()}
    names = [m.name for m in config.modems]
    names += sorted(set(known) - set(names))
    sims = []
    sent = spool.sent_counts_of(names)
    for name in names:
        row = current_sim_state(known.get(name) or {"state": "unknown"}, liveness)
        modem = config.modem(name)
        minute, today, month = sent[name]
        sims.append(SimStatus(
            name=name, state=row.pop("state", None) or "unknown",
            port=row.pop("port", None) or (modem.port if modem else None),
            signal=row.pop("signal", None), operator=row.pop("operator", None),
            errors=row.pop("errors", 0) or 0, last_error=row.pop("last_error", None),
            sent_minute=minute, sent_today=today, sent_month=month,
            per_minute=modem.per_minute if modem else None,
            per_day=modem.per_day if modem else None,
            per_month=modem.per_month if modem else None,
            details={k: v for k, v in row.items()
                     if k not in ("name", "sent_today", "sent_month")}))
    hooks, commands = spool.inbound_hooks.summary(HANDLER_STEPS)
    now = utcnow()
    return Status(daemon=liveness, sims=tuple(sims), queue=spool.counts(),
                  campaigns=tuple(all_progress(spool, config)), spool=spool.where,
                  daemons=running_daemons(spool, config.silent_after),
                  hooks_pending=hooks.count, hooks_oldest_age=hooks.age(now),
                  commands_pending=commands.count, commands_oldest_age=commands.age(now))
