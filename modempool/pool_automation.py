"""The pool's automation part: what the daemon does by itself, as a person sets it up:
auto-reply rules (the config's, then those stored), the numbers received SMS are forwarded
to, and recurring jobs (birthdays, daily and weekly notices) with their due runs. `Pool` holds
it as `pool.automation_desk` and keeps each call under its front-door name
(`pool.add_job(...)` is `pool.automation_desk.add_job(...)`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modempool.operator.autoreply import AutoReplyEntry, Rule
    from modempool.operator.forward_leftovers import ForwardLeftover, GivenUp
    from modempool.operator.forward_retry import Retried
    from modempool.operator.forwarding import ForwardTarget
    from modempool.operator.recurring import Job, JobRun
    from modempool.pool import Pool

__all__ = ["PoolAutomation"]


class PoolAutomation:
    """Auto-replies, forward targets and recurring jobs, as a person asks for them."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def add_autoreply(self, reply: str, *, keywords: Iterable[str] = (),
                      pattern: str | None = None, sim: str | None = None,
                      hours: str | None = None, cooldown: int = 3600) -> Rule:
        """Store an auto-reply rule (tried after the config's): `keywords` or a `pattern`,
        only on `sim` (a configured one, else UnknownSim), only in `hours` (09:00-18:00)."""
        if sim is not None:
            self.pool.config.check_sims([sim])
        return self.pool.autoreplies.add(reply, keywords=tuple(keywords), pattern=pattern, sim=sim,
                                         hours=hours, cooldown=cooldown)

    def remove_autoreply(self, rule_id: int) -> None:
        """Delete a stored rule (`db:N`); the config's are changed in the config file."""
        self.pool.autoreplies.remove(rule_id)

    def autoreply_rules(self) -> list[Rule]:
        """Every auto-reply rule in the order they are tried: the config's, then the stored."""
        from modempool.operator.autoreply import rules_from_config

        return rules_from_config(self.pool.config) + self.pool.autoreplies.rules()

    def autoreply_log(self, limit: int = 50) -> list[AutoReplyEntry]:
        """What the auto-reply answered and what its cooldown held back, newest first."""
        return self.pool.autoreplies.log(limit)

    def forward_targets(self) -> list[ForwardTarget]:
        """Every number received SMS are forwarded to: the config's, then those added here."""
        return self.pool.forwarding.listed()

    def add_forward_target(self, number: str) -> str:
        """Forward each received SMS to `number` too (the daemon needs no restart); returns
        it in E.164. PoolError if it is a target already."""
        return self.pool.forwarding.add(number)

    def remove_forward_target(self, number: str) -> str:
        """Stop forwarding to a number added here; NotFound for one that is not (or is the
        config's)."""
        return self.pool.forwarding.remove(number)

    def forward_leftovers(self) -> list[ForwardLeftover]:
        """The received SMS whose forward command was cut short with no mark (before schema
        15, or a step passed after a bug), which nothing runs again: `forward_leftovers`."""
        from modempool.operator.forward_leftovers import leftovers

        return leftovers(self.pool.spool)

    def give_up_forward_leftovers(self, ids: Iterable[int] = (), *,
                                  every: bool = False) -> GivenUp:
        """Record the leftovers `ids` (or all, with `every` and no ids) as given up, once
        dealt with by hand: listed no more. The ids given up and those that were no leftover;
        NotFound when none of `ids` was one (`forward_leftovers.give_up`)."""
        from modempool.operator.forward_leftovers import give_up

        return give_up(self.pool.spool, list(ids), every=every)

    def retry_forward_leftovers(self, ids: Iterable[int] = (), *,
                                every: bool = False) -> Retried:
        """Run the config's forward command again, once, for the leftovers `ids` (or all, with
        `every` and no ids), each claimed first so that no two retries run one SMS: those that
        exit 0 are listed no more, those that fail are listed again (`forward_retry.retry`).
        NotFound when none of `ids` was one."""
        from modempool.operator.forward_retry import retry

        return retry(self.pool.spool, self.pool.config.forward, list(ids), every=every)

    def add_job(self, name: str, kind: str, template: str, *, at: str = "09:00",
                weekday: str | None = None, numbers: Iterable[str] = (),
                groups: str | Iterable[str] = ()) -> Job:
        """Save a recurring job (birthday, daily, weekly) run by the daemon at `at`, local to
        `[pool] timezone`; `groups` as expressions like "员工-实习生"."""
        from modempool.operator.contacts import parse_selections

        return self.pool.jobs.add(name, kind, template, at=at, weekday=weekday,
                                  numbers=tuple(numbers), groups=parse_selections(groups))

    def remove_job(self, job_id: int) -> None:
        """Delete a recurring job (NotFound if there is none with this id)."""
        self.pool.jobs.remove(job_id)

    def run_due_jobs(self, now: datetime | None = None) -> list[JobRun]:
        """Queue what recurring jobs are due now (the daemon does it every minute)."""
        from modempool.operator.recurring import run_due_jobs

        return run_due_jobs(self.pool.spool, self.pool.config, now)
