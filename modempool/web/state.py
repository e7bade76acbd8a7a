"""What the API's routes share: the config, the front door (`Pool`) and its spool, accounts
and webhooks, the throttle, the sends' group commit and the request counter. One `ApiState` per
app, at `app.state.api`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from modempool.account_pool import PlannedSend, Queued
from modempool.accounts import Accounts
from modempool.auth_throttle import FailureThrottle
from modempool.group_commit import GroupCommit
from modempool.pool import Pool
from modempool.webhooks import Webhooks


GROUPED_SENDS_UP_TO = 100   # recipients; bigger sends would hold up the small ones batched with them
KEY_REMEMBERED_SECONDS = 5.0  # a key rotated by another process may pass this long (docs/http.md)


@dataclass
class ApiState:
    config: Any
    spool: Any
    pool: Pool
    accounts: Accounts
    webhooks: Webhooks
    throttle: FailureThrottle
    sends: GroupCommit
    registry: Any = None                 # prometheus_client.CollectorRegistry of this app
    requests: Any = None                 # the HTTP requests counter
    extra: dict[str, Any] = field(default_factory=dict)   # room for the console's own state
    forwarded_warned: bool = False       # X-Forwarded-For without behind_proxy, logged once

    @classmethod
    def open(cls, config: Any, spool: Any | None = None) -> ApiState:
        spool = spool if spool is not None else config.open_spool()
        return cls(config=config, spool=spool, pool=Pool(config, spool=spool),
                   accounts=Accounts(spool, remember_for=KEY_REMEMBERED_SECONDS), webhooks=Webhooks(spool),
                   throttle=FailureThrottle(spool, config.http.auth_failures_per_minute, 60.0),
                   sends=GroupCommit(spool))

    async def send(self, planned: PlannedSend) -> list[Queued]:
        """Run a send (`AccountPool.plan_send`) off the event loop. Small sends share one
        transaction with those that arrive meanwhile, checked before it (group_commit.py: one
        commit for many requests); a big batch has a transaction of its own."""
        if len(planned) <= GROUPED_SENDS_UP_TO:
            return await self.sends.run(planned.write, check=planned.check, locks=planned.locks)
        return await run_in_threadpool(planned)
