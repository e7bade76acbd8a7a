"""The web console: server-rendered pages for the people who run the bank, served at `/` by
the same app as the HTTP API. `install(app)` adds its routes, static files and the redirect to
/login for pages opened without a session. See docs/console.md."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from modempool.web.console.base import LoginRequired

log = logging.getLogger("modempool.web")


def install(app: FastAPI) -> None:
    from urllib.parse import quote

    from modempool.web.console import pages, pages_admin, pages_campaigns, pages_people

    app.mount("/static", StaticFiles(packages=[("modempool.web.console", "static")]), name="static")
    for module in (pages, pages_people, pages_campaigns, pages_admin):
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login?next=" + quote(exc.next_path, safe=""), status_code=303)

    from modempool.spool.unavailable import SpoolUnavailable, driver_errors

    for kind in (SpoolUnavailable, *driver_errors()):   # over the API's handler (problems.py)
        app.add_exception_handler(kind, _database_away)


def _database_away(request: Request, exc: Exception) -> Response:
    """A console page whose database cannot answer now: a page in the console's style and
    language (503, Retry-After), not the API's JSON problem, which says that nothing was
    changed, or, when the connection was lost at COMMIT (`SpoolOutcomeUnknown`), that the
    change may have been stored; any other request (the API, Kannel) or another database
    error: the API's answer (`problems.database`)."""
    from modempool.spool.unavailable import SpoolOutcomeUnknown, unavailable
    from modempool.web import problems
    from modempool.web.console.base import render

    found = unavailable(exc)
    endpoint = request.scope.get("endpoint")
    if found is None or not getattr(endpoint, "__module__", "").startswith(__name__):
        return problems.database(request, exc)
    log.warning("503 on %s %s: %s [%s]", request.method, request.url.path, found, found.reason)
    page = render(request, "unavailable.html", {
        "retry_after": found.retry_after,
        "outcome_unknown": isinstance(found, SpoolOutcomeUnknown)}, status=503)
    page.headers["Retry-After"] = str(found.retry_after)
    return page
