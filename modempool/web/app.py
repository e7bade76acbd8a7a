"""The HTTP API application: `create_app(config)` returns a FastAPI app over the config's
spool (the same file the daemon uses).

Layout, for whoever adds to it (the web console, say):
- `app.state.api` is the `ApiState` (config, spool, accounts, webhooks, metrics registry);
- routes live in `routes_*.py` modules as `APIRouter`s, included below; a route that needs
  the caller's account takes `account: Account = Depends(current_account)` (auth.py) or
  `pool: AccountPool = Depends(account_pool)` (the pool as that account sees it);
- errors are library exceptions (`PoolError` subclasses), turned into RFC 9457 problem
  documents by problems.py; a route raises, it does not build error bodies;
- templates and static files would be mounted here, e.g.
  `app.mount("/static", StaticFiles(packages=[("modempool.web", "static")]))` and a
  `Jinja2Templates(directory=...)` used by a router of console pages.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from modempool.web import problems
from modempool.web.metrics import registry_for
from modempool.web.middleware import BodyLimit, CountRequests
from modempool.web.state import ApiState

DESCRIPTION = """The modempool HTTP API: queue SMS through the modem bank, follow them, read
what comes in. Authenticate with `Authorization: Bearer KEY` (a key from `modempool accounts
add`). Errors are RFC 9457 problem documents (`application/problem+json`)."""


def create_app(config: Any, *, spool: Any | None = None) -> FastAPI:
    """The API over `config`'s spool (or the open `spool` given)."""
    from modempool.web import console, kannel, routes_messages, routes_operator, routes_status

    api = ApiState.open(config, spool)
    app = FastAPI(title="modempool", version="1", description=DESCRIPTION,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.api = api
    api.registry, api.requests = registry_for(api)
    problems.install(app)
    app.include_router(routes_status.router)
    app.include_router(routes_messages.router)
    app.include_router(routes_operator.router)
    app.include_router(kannel.router)
    console.install(app)   # the web console's pages at / (modempool/web/console/)
    # outermost first: the body limit wraps everything, then the counter
    app.add_middleware(CountRequests, counter=api.requests)
    app.add_middleware(BodyLimit, max_body=config.http.max_body)
    return app
