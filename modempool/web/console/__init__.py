"""The web console: server-rendered pages for the people who run the bank, served at `/` by
the same app as the HTTP API. `install(app)` adds its routes, static files and the redirect to
/login for pages opened without a session. See docs/console.md."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from modempool.web.console.base import LoginRequired


def install(app: FastAPI) -> None:
    from urllib.parse import quote

    from modempool.web.console import pages, pages_admin, pages_campaigns, pages_people

    app.mount("/static", StaticFiles(packages=[("modempool.web.console", "static")]), name="static")
    for module in (pages, pages_people, pages_campaigns, pages_admin):
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login?next=" + quote(exc.next_path, safe=""), status_code=303)
