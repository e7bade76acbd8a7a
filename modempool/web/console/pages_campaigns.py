"""Campaigns (群发): create one (from a saved template, 短信模板, or a new text with fields),
preview with cost and problems, start, pause, resume, live progress and the report; save, edit
and delete templates. Who sees and runs which campaign is `AccountPool.campaign_desk()`'s
rule (admins all, senders their own, viewers look at all); saved templates are the bank's
(`AccountPool.templates`, admins). A refused change of a campaign the account sees answers 403
with the refusal in words; 404 is for what it may not see (another sender's campaign, the
templates for anyone but an admin)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from modempool.accounts import Forbidden
from modempool.errors import NotFound, PoolError
from modempool.operator.contacts import parse_selection
from modempool.sessions import Session
from modempool.web.console.base import (current_session, error_text, form_of, redirect, render,
                                        translate)
from modempool.web.console.pages_people import operator_of

router = APIRouter(include_in_schema=False)
FIELDS = ("name", "template", "groups", "numbers", "kind")


def _campaigns(request: Request, session: Session) -> Any:
    """The campaigns the signed-in account sees and runs (`AccountCampaigns`)."""
    return operator_of(request, session).campaign_desk()


@router.get("/campaigns")
def campaigns(request: Request, session: Session = Depends(current_session),
              use: int | None = None) -> HTMLResponse:
    """The list and the new-campaign form; `use` fills the form from a saved template."""
    values, chosen = {"kind": "notice"}, None
    if use is not None:
        try:
            chosen = operator_of(request, session).templates().get(use)
            values = {"template": chosen.text, "kind": chosen.kind, "from_template": str(use)}
        except (Forbidden, NotFound):
            return render(request, "not_found.html", session=session, status=404)
    return _list(request, session, values, {}, chosen=chosen)


def _list(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status: int = 200, chosen: Any = None,
          template_values: dict[str, str] | None = None,
          template_errors: dict[str, str] | None = None) -> HTMLResponse:
    store = _campaigns(request, session)
    rows = [{**c.as_dict(), "progress": store.progress(c.id).to_dict()}
            for c in reversed(store.list())]
    operator = operator_of(request, session)
    saved = operator.templates().list() if operator.permissions()["templates"] else []
    return render(request, "campaigns.html", {
        "campaigns": rows, "values": values, "errors": errors, "chosen": chosen,
        "groups": operator.groups(), "templates": saved,
        "tvalues": template_values or {"kind": "notice"}, "terrors": template_errors or {}},
        session=session, status=status)


@router.post("/campaigns")
async def create(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in FIELDS}
    store = _campaigns(request, session)
    errors: dict[str, str] = {}
    if not values["name"].strip():
        errors["name"] = translate(request, "Give the campaign a name.")
    if errors:
        return _list(request, session, values, errors, status=400)
    numbers = [n for n in re.split(r"[,;，；\s]+", values["numbers"]) if n]
    try:
        created = await run_in_threadpool(
            store.create, values["name"].strip(), values["template"], numbers=numbers,
            groups=parse_selection(values["groups"]), kind=values["kind"] or "notice")
    except Forbidden as exc:   # the list is the account's to see: refused there, in words
        return _list(request, session, values, {"form": error_text(request, exc)}, status=403)
    except PoolError as exc:
        field = ("template" if exc.code.startswith("template_") else
                 "groups" if exc.code.startswith("group_") else
                 "numbers" if exc.code.startswith("number_") or exc.code == "campaign_no_recipients"
                 else "form")
        return _list(request, session, values, {field: error_text(request, exc)}, status=400)
    return redirect(f"/campaigns/{created.id}")


# ---- saved templates ------------------------------------------------------------------------

TEMPLATE_FIELDS = ("tname", "ttext", "kind")


@router.post("/campaigns/templates")
async def save_template(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in TEMPLATE_FIELDS}
    try:
        templates = operator_of(request, session).templates()
        await run_in_threadpool(templates.add, values["tname"], values["ttext"],
                                values["kind"] or "notice")
    except Forbidden:
        return render(request, "not_found.html", session=session, status=404)
    except PoolError as exc:
        return _list(request, session, {"kind": "notice"}, {}, status=400, template_values=values,
                     template_errors={_template_field(exc): error_text(request, exc)})
    return redirect("/campaigns#h-templates")


@router.get("/campaigns/templates/{template_id}")
def template_page(request: Request, template_id: int,
                  session: Session = Depends(current_session)) -> HTMLResponse:
    try:
        saved = operator_of(request, session).templates().get(template_id)
    except (Forbidden, NotFound):
        return render(request, "not_found.html", session=session, status=404)
    return render(request, "template.html", {
        "t": saved, "values": {"tname": saved.name, "ttext": saved.text, "kind": saved.kind},
        "errors": {}}, session=session)


@router.post("/campaigns/templates/{template_id}")
async def edit_template(request: Request, template_id: int,
                        session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in TEMPLATE_FIELDS}
    try:
        templates = operator_of(request, session).templates()
        saved = templates.get(template_id)
        if form.get("delete") == "yes":
            await run_in_threadpool(templates.remove, template_id)
        else:
            await run_in_threadpool(templates.update, template_id, values["tname"],
                                    values["ttext"], values["kind"] or "notice")
    except (Forbidden, NotFound):
        return render(request, "not_found.html", session=session, status=404)
    except PoolError as exc:
        return render(request, "template.html", {
            "t": saved, "values": values,
            "errors": {_template_field(exc): error_text(request, exc)}},
            session=session, status=400)
    return redirect("/campaigns#h-templates")


def _template_field(exc: PoolError) -> str:
    return ("tname" if exc.code in ("template_name_missing", "template_exists") else
            "kind" if exc.code == "campaign_kind" else "ttext")


@router.get("/campaigns/{campaign_id}")
def campaign(request: Request, campaign_id: int,
             session: Session = Depends(current_session)) -> HTMLResponse:
    return _detail(request, session, campaign_id, "")


def _detail(request: Request, session: Session, campaign_id: int, error: str,
            problems: list[str] | None = None, status: int = 200) -> HTMLResponse:
    store = _campaigns(request, session)
    try:
        item = store.get(campaign_id)
    except NotFound:
        return render(request, "not_found.html", session=session, status=404)
    return render(request, "campaign.html", {
        "c": item.as_dict(), "plan": store.plan(campaign_id),
        "progress": store.progress(campaign_id).to_dict(),
        "report": store.report(campaign_id) if item.state.value != "draft" else None,
        "may_run": store.may_run(campaign_id), "error": error, "problems": problems or []},
        session=session, status=status)


@router.get("/fragments/campaigns/{campaign_id}")
def campaign_progress(request: Request, campaign_id: int,
                      session: Session = Depends(current_session)) -> HTMLResponse:
    store = _campaigns(request, session)
    try:
        return render(request, "campaign_progress.html",
                      {"progress": store.progress(campaign_id).to_dict(),
                       "report": store.report(campaign_id),
                       "may_run": store.may_run(campaign_id)}, session=session)
    except NotFound:
        return render(request, "not_found.html", session=session, status=404)


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(request: Request, campaign_id: int, action: str,
                          session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    store = _campaigns(request, session)
    if action not in ("start", "pause", "resume", "cancel"):
        return render(request, "not_found.html", session=session, status=404)
    try:
        if action == "start":
            await run_in_threadpool(store.start, campaign_id,
                                    skip_problems=form.get("skip_problems") == "yes")
        else:
            await run_in_threadpool(getattr(store, action), campaign_id)
    except NotFound:
        return render(request, "not_found.html", session=session, status=404)
    except Forbidden as exc:   # a campaign it sees (a viewer's): refused there, in words
        return _detail(request, session, campaign_id, error_text(request, exc), status=403)
    except PoolError as exc:
        return _detail(request, session, campaign_id, error_text(request, exc),
                       list(getattr(exc, "problems", []) or []), status=409)
    return redirect(f"/campaigns/{campaign_id}")
