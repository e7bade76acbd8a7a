"""What the API's routes share: the config, the front door (`Pool`) and its spool, accounts
and webhooks, the throttle, the sends' group commit and the request counter. One `ApiState` per
app, at `app.state.api`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from modempool.accounts import Accounts, FailureThrottle
from modempool.group_commit import GroupCommit
from modempool.pool import Pool
from modempool.webhooks import Webhooks


T = TypeVar("T")
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

    @classmethod
    def open(cls, config: Any, spool: Any | None = None) -> ApiState:
        spool = spool if spool is not None else config.open_spool()
        return cls(config=config, spool=spool, pool=Pool(config, spool=spool),
                   accounts=Accounts(spool, remember_for=KEY_REMEMBERED_SECONDS), webhooks=Webhooks(spool),
                   throttle=FailureThrottle(config.http.auth_failures_per_minute, 60.0),
                   sends=GroupCommit(spool))

    async def send(self, operation: Callable[[], T], recipients: int) -> T:
        """Run a send of `recipients` numbers off the event loop. Small sends share one
        transaction with those that arrive meanwhile (group_commit.py: one commit for many
        requests); a big batch has a transaction of its own."""
        if recipients <= GROUPED_SENDS_UP_TO:
            return await self.sends.run(operation)
        return await run_in_threadpool(operation)
