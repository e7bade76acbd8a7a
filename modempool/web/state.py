"""What the API's routes share: the config, the front door (`Pool`) and its spool, accounts
and webhooks, the throttle and the request counter. One `ApiState` per app, at `app.state.api`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modempool.accounts import Accounts, FailureThrottle
from modempool.pool import Pool
from modempool.webhooks import Webhooks


@dataclass
class ApiState:
    config: Any
    spool: Any
    pool: Pool
    accounts: Accounts
    webhooks: Webhooks
    throttle: FailureThrottle
    registry: Any = None                 # prometheus_client.CollectorRegistry of this app
    requests: Any = None                 # the HTTP requests counter
    extra: dict[str, Any] = field(default_factory=dict)   # room for the console's own state

    @classmethod
    def open(cls, config: Any, spool: Any | None = None) -> ApiState:
        spool = spool if spool is not None else config.open_spool()
        return cls(config=config, spool=spool, pool=Pool(config, spool=spool), accounts=Accounts(spool), webhooks=Webhooks(spool),
                   throttle=FailureThrottle(config.http.auth_failures_per_minute, 60.0))
