"""What every console page shares: the signed-in session from its cookie, CSRF checks on
forms, the language, and rendering a template with all of that in its context.

The session cookie is HttpOnly and SameSite=Strict (Secure over HTTPS) and holds only a
random token; the spool keeps its digest (modempool.sessions). Every form carries the
session's CSRF token in a hidden `csrf` input; a POST without the right one is refused (403).
The login form, which has no session yet, uses a CSRF cookie of its own (double submit).
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from modempool.account_pool import AccountPool
from modempool.sessions import Session, Sessions
from modempool.web.console import i18n

SESSION_COOKIE = "mp_session"
LOGIN_CSRF_COOKIE = "mp_login_csrf"
SESSION_LIFETIME = timedelta(hours=12)


class LoginRequired(Exception):
    """No live session: the page answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sessions(request: Request) -> Sessions:
    api = request.app.state.api
    if "sessions" not in api.extra:
        api.extra["sessions"] = Sessions(api.spool, api.accounts)
    return api.extra["sessions"]


def current_session(request: Request) -> Session:
    """The signed-in session (a dependency of every page but /login)."""
    session = sessions(request).resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return session


def pool_of(request: Request, session: Session) -> AccountPool:
    """The pool as the signed-in account sees it: every page goes through this."""
    return request.app.state.api.pool.for_account(session.account)


def language(request: Request) -> str:
    return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def translate(request: Request, text: str, **values: Any) -> str:
    return i18n.gettext(language(request))(text, **values)


def error_text(request: Request, error: Exception) -> str:
    """A library error as the page shows it: in the request's language where the catalog
    words its code, else the library's English. A right the server's database role lacks
    (`SpoolForbidden`) is raised again instead: the server's fault, a 500 as on the API, its
    role and GRANT for the operator's log, never for the page's user. So is the database
    away (`SpoolUnavailable`): not a refusal to show beside a field with a 400, but the
    console's 503 page, which also says when the change may have been stored."""
    from modempool.spool.database_errors import SpoolForbidden
    from modempool.spool.unavailable import SpoolUnavailable
    from modempool.web.console.errors import describe

    if isinstance(error, (SpoolForbidden, SpoolUnavailable)):
        raise error

    return describe(error, language(request))


async def form_of(request: Request, session: Session) -> Any:
    """The posted form, after checking its CSRF token against the session's."""
    form = await request.form()
    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise HTTPException(403, "the form's security token is missing or stale: reload the page")
    return form


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           session: Session | None = None, status: int = 200) -> HTMLResponse:
    """A page (or fragment) in the request's language, escaped by Jinja2's autoescape."""
    lang = language(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    can = pool_of(request, session).permissions() if session else {}
    values = {"request": request, "session": session, "account": session.account if session else None,
              "can": can,
              "csrf": session.csrf if session else "", "lang": lang, "here": here,
              "here_quoted": quote(here, safe=""), "html_lang": "zh-CN" if lang == "zh_CN" else "en",
              **(context or {})}
    tz = request.app.state.api.pool.config.tz
    body = i18n.environment(lang, tz).get_template(template).render(values)
    response = HTMLResponse(body, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
    return response


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def set_session_cookie(request: Request, response: Any, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/")


def safe_next(path: str | None) -> str:
    """Only a path on this site (no //host, no scheme) may be a redirect's target."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
