"""Admin pages: history search and export, auto-replies and forwarding, accounts (keys,
passwords) and webhooks. `AccountPool` refuses anyone but an admin; the pages then answer
404, as for anything an account may not see, but for the auto-reply rules, which everyone
sees: a refused change there answers 403 with the refusal in words."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from modempool.accounts import Forbidden
from modempool.errors import PoolError, SpoolFailure
from modempool.operator.history import Query
from modempool.sessions import Session
from modempool.web.console.base import current_session, error_text, form_of, redirect, render
from modempool.web.console.pages_people import operator_of

router = APIRouter(include_in_schema=False)
HISTORY_FIELDS = ("text", "number", "contact", "since", "until", "direction")
HISTORY_PAGE = 100


def _not_found(request: Request, session: Session) -> HTMLResponse:
    return render(request, "not_found.html", session=session, status=404)


def _query(request: Request, values: dict[str, str], limit: int | None) -> Query:
    from modempool.when import parse_when

    tz = request.app.state.api.config.tz
    return Query(text=values["text"].strip() or None, number=values["number"].strip() or None,
                 contact=values["contact"].strip() or None,
                 since=parse_when(values["since"].strip() or None, tz, past=True),
                 until=parse_when(values["until"].strip() or None, tz, past=True),
                 direction=values["direction"] if values["direction"] in ("in", "out") else "both",
                 limit=limit)


def _history_field(exc: PoolError) -> str:
    """The history form's field a refusal is shown beside."""
    if exc.code.startswith("time_"):
        return "since"
    return "number" if exc.code.startswith("number_") else "text"


# ---- history --------------------------------------------------------------------------------

@router.get("/history")
def history(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    values = {k: request.query_params.get(k, "") for k in HISTORY_FIELDS}
    operator = operator_of(request, session)
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    searched = any(values[k] for k in HISTORY_FIELDS if k != "direction")
    try:
        if searched:
            rows = operator.history(_query(request, values, HISTORY_PAGE))
    except PoolError as exc:
        errors[_history_field(exc)] = error_text(request, exc)
    return render(request, "history.html", {"values": values, "rows": rows, "errors": errors,
                                            "searched": searched, "page": HISTORY_PAGE,
                                            "query": request.url.query}, session=session)


@router.get("/history/export")
async def history_export(request: Request, session: Session = Depends(current_session)) -> Response:
    values = {k: request.query_params.get(k, "") for k in HISTORY_FIELDS}
    suffix = ".xlsx" if request.query_params.get("format") == "xlsx" else ".csv"
    operator = operator_of(request, session)
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="modempool-history-")
    import os

    os.close(handle)
    path = Path(name)
    try:
        await run_in_threadpool(operator.export_history, _query(request, values, None), path)
    except Forbidden:
        path.unlink(missing_ok=True)
        return _not_found(request, session)
    except PoolError as exc:
        path.unlink(missing_ok=True)
        return render(request, "history.html", {"values": values, "rows": [], "searched": False,
                                                "errors": {_history_field(exc): error_text(request, exc)},
                                                "page": HISTORY_PAGE,
                                                "query": ""}, session=session, status=400)
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    return FileResponse(path, filename=f"history-{stamp}{suffix}",
                        background=BackgroundTask(path.unlink, missing_ok=True))


# ---- auto-replies and forwarding ------------------------------------------------------------

@router.get("/autoreplies")
def autoreplies(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    return _autoreplies(request, session, {}, {})


def _autoreplies(request: Request, session: Session, values: dict[str, str],
                 errors: dict[str, str], status: int = 200) -> HTMLResponse:
    operator = operator_of(request, session)
    try:
        config_rules, rules = operator.autoreply_rules()
        context = {"rules": rules, "config_rules": config_rules, "log": [], "forward": None,
                   "configured_targets": [], "targets": []}
        if operator.permissions()["forwarding"]:   # where replies go, and the log: admins
            forward, targets = operator.forwarding()
            context.update(log=operator.autoreply_log(20), forward=forward,
                           configured_targets=list(targets.configured), targets=targets.stored())
    except SpoolFailure:
        raise   # the server's role (a 500, the GRANT in its log) or the database away (a 503)
    except PoolError as exc:   # a bad [autoreply] or [forward] section: shown, not a crash
        context = {"rules": [], "config_rules": [], "log": [], "forward": None,
                   "configured_targets": [], "targets": [], "config_error": str(exc)}
    return render(request, "autoreplies.html", {**context, "values": values, "errors": errors},
                  session=session, status=status)


@router.post("/autoreplies")
async def autoreply_add(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in ("keywords", "reply", "hours", "sim")}
    keywords = tuple(k.strip() for k in values["keywords"].replace("，", ",").split(",") if k.strip())
    try:
        await run_in_threadpool(operator_of(request, session).add_autoreply, values["reply"],
                                keywords=keywords, hours=values["hours"].strip() or None,
                                sim=values["sim"].strip() or None)
    except Forbidden as exc:
        return _autoreplies(request, session, values, {"form": error_text(request, exc)},
                            status=403)
    except PoolError as exc:
        field = {"autoreply_no_reply": "reply", "hours_form": "hours",
                 "unknown_sim": "sim"}.get(exc.code, "keywords")
        return _autoreplies(request, session, values, {field: error_text(request, exc)},
                            status=400)
    return redirect("/autoreplies")


@router.post("/forwarding/{action}")
async def forwarding_change(request: Request, action: str,
                            session: Session = Depends(current_session)) -> Response:
    """Add or remove a number received SMS are forwarded to (the daemon reads them per SMS)."""
    form = await form_of(request, session)
    values = {"forward_to": str(form.get("forward_to", ""))}
    try:
        _, targets = operator_of(request, session).forwarding()
        if action == "add":
            await run_in_threadpool(targets.add, values["forward_to"])
        elif action == "remove":
            await run_in_threadpool(targets.remove, values["forward_to"])
        else:
            return _not_found(request, session)
    except Forbidden:
        return _not_found(request, session)
    except PoolError as exc:
        return _autoreplies(request, session, values, {"forward_to": error_text(request, exc)},
                            status=400)
    return redirect("/autoreplies#h-forward")


@router.post("/autoreplies/{rule_id}/remove")
async def autoreply_remove(request: Request, rule_id: int,
                           session: Session = Depends(current_session)) -> Response:
    await form_of(request, session)
    try:
        await run_in_threadpool(operator_of(request, session).remove_autoreply, rule_id)
    except Forbidden as exc:
        return _autoreplies(request, session, {}, {"form": error_text(request, exc)},
                            status=403)
    except SpoolFailure:
        raise   # the server's role (a 500) or the database away (a 503), not "no such rule"
    except PoolError:
        return _not_found(request, session)
    return redirect("/autoreplies")


# ---- accounts, keys, passwords, webhooks ----------------------------------------------------

@router.get("/admin")
def admin(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    return _admin(request, session, {}, {})


def _admin(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
           shown: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    operator = operator_of(request, session)
    try:
        accounts, webhooks = operator.accounts().list(), operator.webhooks().list()
    except Forbidden:
        return _not_found(request, session)
    from modempool.webhooks.store import EVENT_TYPES

    return render(request, "admin.html", {"accounts": accounts, "webhooks": webhooks,
                                          "events": EVENT_TYPES, "values": values,
                                          "errors": errors, "shown": shown or {}},
                  session=session, status=status)


@router.post("/admin/{action}")
async def admin_action(request: Request, action: str,
                       session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in ("name", "role", "sims", "password", "url", "id")}
    operator = operator_of(request, session)
    shown: dict[str, str] = {}
    try:
        operator.require_admin()
        if action == "add":
            sims = [s.strip() for s in values["sims"].split(",") if s.strip()]
            _, key = await run_in_threadpool(operator.accounts().add, values["name"].strip(),
                                             values["role"], sims=sims or None)
            shown = {"what": values["name"], "key": key}
        elif action == "rotate":
            shown = {"what": values["name"],
                     "key": await run_in_threadpool(operator.accounts().rotate, values["name"])}
        elif action == "remove":
            if values["name"] == session.account.name:
                raise PoolError("you cannot remove the account you are signed in with",
                                code="account_remove_self")
            await run_in_threadpool(operator.accounts().remove, values["name"])
        elif action == "passwd":
            await run_in_threadpool(operator.sessions().set_password, values["name"],
                                    values["password"])
        elif action == "webhook":
            events = [str(e) for e in form.getlist("events")]
            hook, secret = await run_in_threadpool(operator.webhooks().add, values["url"].strip(),
                                                   events)
            shown = {"what": hook.url, "key": secret}
        elif action == "unhook":
            await run_in_threadpool(operator.webhooks().remove, values["id"])
        else:
            return _not_found(request, session)
    except Forbidden:
        return _not_found(request, session)
    except PoolError as exc:
        return _admin(request, session, values, {action: error_text(request, exc)}, status=400)
    if shown:   # a key or secret is shown once, on this answer only
        return _admin(request, session, {}, {}, shown)
    return redirect("/admin")
