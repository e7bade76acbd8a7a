"""Sign-in, the dashboard, send and messages: the console's first pages.

Each page translates a request into calls on the pool as the signed-in account sees it
(`AccountPool`, where every rule lives) and renders the result; refusals are the library's
`PoolError`s, shown beside the field they concern with the user's input kept."""

from __future__ import annotations

import math
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from modempool.accounts import Forbidden
from modempool.errors import NotFound, PoolError
from modempool.sessions import Session
from modempool.web.auth import client_address
from modempool.web.console import i18n
from modempool.web.console.base import (LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_LIFETIME,
                                        current_session, error_text, form_of, pool_of, redirect,
                                        render, safe_next, sessions, set_session_cookie, translate)

router = APIRouter(include_in_schema=False)
STATES = ("queued", "sending", "sent", "delivered", "failed", "expired", "cancelled", "ambiguous")
PAGE_SIZE = 50


# ---- signing in and out, language -----------------------------------------------------------

@router.get("/login")
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _login_form(request, next)


def _login_form(request: Request, next_path: str, *, account: str = "", error: str = "",
                status: int = 200) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, "login.html", {"login_csrf": token, "next": safe_next(next_path),
                                              "account_name": account, "error": error},
                      status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/login")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    name, secret = str(form.get("account", "")).strip(), str(form.get("key", ""))
    next_path = safe_next(str(form.get("next", "/")))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, str(form.get("csrf", ""))):
        return _login_form(request, next_path, account=name, status=403,
                           error=translate(request, "The form expired; please sign in again."))
    api = request.app.state.api
    client = client_address(request)
    wait = api.throttle.retry_after(client)
    if wait > 0:
        return _login_form(request, next_path, account=name, status=429, error=translate(
            request, "Too many failed attempts; try again in %(seconds)s seconds.",
            seconds=math.ceil(wait)))
    account = await run_in_threadpool(sessions(request).check, name, secret) if name else None
    if account is None:
        await run_in_threadpool(api.throttle.failed, client)   # may write to the spool
        return _login_form(request, next_path, account=name, status=401,
                           error=translate(request, "Unknown account, or wrong key or password."))
    token, _ = await run_in_threadpool(sessions(request).open, account, SESSION_LIFETIME)
    response = redirect(next_path)
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, session: Session = Depends(current_session)) -> Response:
    await form_of(request, session)
    sessions(request).close(request.cookies.get(SESSION_COOKIE))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def switch_language(code: str, next: str = "/") -> Response:
    response = redirect(safe_next(next))
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="strict", path="/")
    return response


# ---- dashboard ------------------------------------------------------------------------------

@router.get("/")
def dashboard(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    return render(request, "dashboard.html", _dashboard(request, session), session=session)


@router.get("/fragments/dashboard")
def dashboard_fragment(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    return render(request, "dashboard_live.html", _dashboard(request, session), session=session)


def _dashboard(request: Request, session: Session) -> dict[str, Any]:
    status = pool_of(request, session).status()
    return {"daemon": status.daemon, "sims": status.sims, "queue": status.queue,
            "throughput": status.throughput, "campaigns": status.campaigns,
            "peak": max(status.throughput) or 1, "sent_hour": sum(status.throughput),
            "hooks_late": status.hooks_late, "hooks_pending": status.hooks_pending,
            "hooks_minutes": round((status.hooks_oldest_age or 0) / 60),
            "commands_late": status.commands_late, "commands_pending": status.commands_pending,
            "commands_minutes": round((status.commands_oldest_age or 0) / 60)}


# ---- send -----------------------------------------------------------------------------------

@router.get("/send")
def send_page(request: Request, session: Session = Depends(current_session),
              to: str = "") -> HTMLResponse:
    return _send_form(request, session, {"to": to})


def _send_form(request: Request, session: Session, values: dict[str, str],
               errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    pool = pool_of(request, session)
    sims = [s.name for s in pool.sims()]
    return render(request, "send.html", {"values": values, "errors": errors or {}, "sims": sims},
                  session=session, status=status)


@router.post("/send")
async def send(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in ("to", "text", "at", "priority", "sim")}
    pool = pool_of(request, session)
    errors: dict[str, str] = {}
    if not session.account.may_send:
        errors["form"] = translate(request, "Your account may look but not send.")
        return _send_form(request, session, values, errors, status=403)
    if not values["text"].strip():
        errors["text"] = translate(request, "Write the message.")
    try:
        numbers = await run_in_threadpool(pool.recipients, values["to"])
    except PoolError as exc:
        errors["to"] = error_text(request, exc)
    not_before = priority = None
    try:
        from modempool.when import parse_when

        not_before = parse_when(values["at"].strip() or None, request.app.state.api.config.tz)
    except PoolError as exc:
        errors["at"] = error_text(request, exc)
    try:
        priority = int(values["priority"] or 0)
    except ValueError:
        errors["priority"] = translate(request, "A whole number, e.g. 0 or 10.")
    if errors:
        return _send_form(request, session, values, errors, status=400)
    try:
        queued = await run_in_threadpool(pool.send, numbers, values["text"], not_before=not_before,
                                         priority=priority,
                                         sims=[values["sim"]] if values["sim"] else None)
    except Forbidden as exc:
        return _send_form(request, session, values, {"form": error_text(request, exc)}, status=403)
    except PoolError as exc:
        return _send_form(request, session, values, {_send_field(exc): error_text(request, exc)},
                          status=429 if exc.code.startswith("quota") else 400)
    return redirect("/messages?ids=" + ",".join(str(q.id) for q in queued))


def _send_field(exc: PoolError) -> str:
    """The field of the send form a refusal is shown beside."""
    if exc.code.startswith(("number_", "contact_", "group_")) or exc.code in (
            "blacklisted", "opted_out", "refused_many", "no_recipient"):
        return "to"
    if exc.code.startswith("text_"):
        return "text"
    if exc.code in ("sim_not_allowed", "unknown_sim"):
        return "sim"
    return "form"


# ---- messages -------------------------------------------------------------------------------

@router.get("/messages")
def messages_page(request: Request, session: Session = Depends(current_session),
                  state: str = "", to: str = "", before: str = "", ids: str = "") -> HTMLResponse:
    return render(request, "messages.html", _messages(request, session, state, to, before, ids),
                  session=session)


@router.get("/fragments/messages")
def messages_fragment(request: Request, session: Session = Depends(current_session),
                      state: str = "", to: str = "", before: str = "", ids: str = "") -> HTMLResponse:
    return render(request, "messages_rows.html", _messages(request, session, state, to, before, ids),
                  session=session)


def _messages(request: Request, session: Session, state: str, to: str, before: str,
              ids: str) -> dict[str, Any]:
    pool = pool_of(request, session)
    error, older = "", None
    state = state if state in STATES else ""
    if ids:
        wanted = [int(i) for i in ids.split(",")[:1000] if i.strip().isdigit()]
        messages = pool.many(wanted)
    else:
        try:
            messages, older = pool.page(state=state or None, to=to.strip() or None,
                                        before=int(before) if before.isdigit() else None,
                                        limit=PAGE_SIZE)
        except PoolError as exc:
            messages, error = [], error_text(request, exc)
    pending = any(m.state.value in ("queued", "sending") for m in messages)
    return {"messages": messages, "older": older, "state": state, "to": to, "ids": ids,
            "states": STATES, "error": error, "pending": pending}


@router.get("/messages/{message_id}")
def message_page(request: Request, message_id: int,
                 session: Session = Depends(current_session)) -> HTMLResponse:
    pool = pool_of(request, session)
    try:
        message = pool.get(message_id)
        parts = pool.parts(message_id)
    except NotFound:
        return render(request, "not_found.html", session=session, status=404)
    return render(request, "message.html", {"message": message, "parts": parts,
                                            "confirm": request.query_params.get("confirm", ""),
                                            "error": request.query_params.get("error", "")},
                  session=session)


@router.post("/messages/{message_id}/{action}")
async def message_action(request: Request, message_id: int, action: str,
                         session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    pool = pool_of(request, session)
    if action not in ("cancel", "retry"):
        return render(request, "not_found.html", session=session, status=404)
    if form.get("confirmed") != "yes":
        return redirect(f"/messages/{message_id}?confirm={action}")
    try:
        await run_in_threadpool(getattr(pool, action), message_id)
    except NotFound:
        return render(request, "not_found.html", session=session, status=404)
    except PoolError as exc:
        message = pool.get(message_id)
        return render(request, "message.html", {"message": message, "parts": pool.parts(message_id),
                                                "confirm": "", "error": error_text(request, exc)},
                      session=session, status=409)
    return redirect(f"/messages/{message_id}")
