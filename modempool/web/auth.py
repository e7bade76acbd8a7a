"""`Authorization: Bearer KEY` → the account, as a FastAPI dependency.

    @router.get("/v1/thing")
    def thing(account: Account = Depends(current_account)): ...

    @router.post("/v1/admin-thing", dependencies=[Depends(require(Role.ADMIN))])

A client address that failed `[http] auth_failures_per_minute` times at once is answered 429
(with Retry-After) before its key is even looked at, and may then fail once more for every
1/N of a minute; its failures are counted in the spool, for every server on it
(modempool/auth_throttle.py). Keys are never logged.
"""

from __future__ import annotations

import logging
import math

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modempool.accounts import Account, Role

log = logging.getLogger("modempool.web")

_bearer = HTTPBearer(auto_error=False, description="An account key: `modempool accounts add`")


def client_address(request: Request) -> str:
    """The peer's address (with `[http] behind_proxy`, uvicorn has put the proxy's
    X-Forwarded-For here already). A request that carries X-Forwarded-For to a server not
    told it is behind a proxy is counted under the proxy's address: said once in the log."""
    api = request.app.state.api
    if not api.forwarded_warned and "x-forwarded-for" in request.headers \
            and not api.config.http.behind_proxy:
        api.forwarded_warned = True
        log.warning("requests carry X-Forwarded-For but [http] behind_proxy is off: failed "
                    "keys are counted under the proxy's address (%s); set behind_proxy = true "
                    "if a proxy on this host forwards them", request.client.host
                    if request.client else "unknown")
    return request.client.host if request.client else "unknown"


def check_key(request: Request, key: str | None) -> Account:
    """The account of `key`, or 401/429 as above (used by Bearer auth and by Kannel's
    username/password via `check_name_key`)."""
    api = request.app.state.api
    client = client_address(request)
    _refuse_if_throttled(api, client)
    account = api.accounts.authenticate(key) if key else None
    if account is None:
        if key:  # a wrong key is a guess; no key at all is not
            api.throttle.failed(client)
        raise HTTPException(401, "missing or unknown API key (send Authorization: Bearer KEY)",
                            headers={"WWW-Authenticate": "Bearer"})
    return account


async def check_name_key(request: Request, name: str, key: str) -> Account | None:
    """Kannel's username/password; None if wrong (the failure is counted)."""
    api = request.app.state.api
    _refuse_if_throttled(api, client_address(request))
    account = api.accounts.remembered(key, name)
    if account is not None:
        return account
    return await run_in_threadpool(_check_name_key, request, name, key)


def _check_name_key(request: Request, name: str, key: str) -> Account | None:
    api = request.app.state.api
    client = client_address(request)
    _refuse_if_throttled(api, client)
    account = api.accounts.authenticate_name(name, key)
    if account is None:
        api.throttle.failed(client)
    return account


def _refuse_if_throttled(api, client: str) -> None:
    wait = api.throttle.retry_after(client)
    if wait > 0:
        raise HTTPException(429, f"too many failed authentication attempts from {client}; "
                            f"try again in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})


async def current_account(request: Request,
                          credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Account:
    return await account_for_key(request, credentials.credentials if credentials else None)


async def request_account(request: Request) -> Account:
    """`current_account` for a route that reads the Authorization header itself (the hot
    `POST /v1/messages`: a dependency costs FastAPI more than the check) and declares it with
    `BEARER_SECURITY` in its `openapi_extra`."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return await account_for_key(request, key if scheme.lower() == "bearer" and key else None)


BEARER_SECURITY = {"security": [{"HTTPBearer": []}]}


async def account_for_key(request: Request, key: str | None) -> Account:
    """On the event loop when the key passed a moment ago (memory only, see accounts.py);
    otherwise the check reads the spool, in a worker thread."""
    api = request.app.state.api
    _refuse_if_throttled(api, client_address(request))
    account = api.accounts.remembered(key)
    if account is not None:
        return account
    return await run_in_threadpool(check_key, request, key)


def require(*roles: Role):
    """A dependency that lets only accounts of these roles through (403 otherwise)."""
    def check(account: Account = Depends(current_account)) -> Account:
        if account.role not in roles:
            raise HTTPException(403, f"account {account.name!r} is a {account.role.value}; "
                                f"this needs {' or '.join(r.value for r in roles)}")
        return account
    return check
