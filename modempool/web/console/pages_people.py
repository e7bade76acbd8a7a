"""Conversations (inbox by contact, inline reply), the address book (contacts, groups and
their members, import, export), opt-outs and the blacklist. Each page calls `AccountPool`
(`Pool.for_account`, whose methods refuse what the account's role may not do) and renders the
result; a refusal is shown beside its field, in the page's language (`error_text`), with what
the user typed kept. A refused change on a page the account sees (contacts, groups, opt-outs)
answers 403 with the refusal in words, as the send and import forms do: "not found" would be
untrue there; 404 is kept for what the account may not see at all."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from modempool.account_pool import AccountPool
from modempool.accounts import Forbidden
from modempool.errors import NotFound, PoolError
from modempool.sessions import Session
from modempool.web.console.base import (current_session, error_text, form_of, pool_of, redirect,
                                        render, translate)

router = APIRouter(include_in_schema=False)
UPLOADS = Path(tempfile.gettempdir()) / "modempool-console-uploads"


def operator_of(request: Request, session: Session) -> AccountPool:
    """The signed-in account's pool, whose operator methods check its role."""
    return pool_of(request, session)


# ---- conversations --------------------------------------------------------------------------

@router.get("/conversations")
def conversations(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    rows = operator_of(request, session).conversations()
    return render(request, "conversations.html", {"threads": rows}, session=session)


@router.get("/conversations/{number}")
def conversation(request: Request, number: str,
                 session: Session = Depends(current_session)) -> HTMLResponse:
    return _thread(request, session, number, {}, "")


def _thread(request: Request, session: Session, number: str, values: dict[str, str],
            error: str, status: int = 200) -> HTMLResponse:
    thread = operator_of(request, session).thread(number)
    if not thread.items:
        return render(request, "not_found.html", session=session, status=404)
    return render(request, "conversation.html",
                  {"number": thread.number, "name": thread.name, "items": thread.items,
                   "contact": thread.contact, "values": values, "error": error},
                  session=session, status=status)


@router.post("/conversations/{number}")
async def reply(request: Request, number: str,
                session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    text = str(form.get("text", ""))
    pool = pool_of(request, session)
    try:
        await run_in_threadpool(pool.send, [number], text)
    except PoolError as exc:
        return _thread(request, session, number, {"text": text}, error_text(request, exc),
                       status=400)
    return redirect(f"/conversations/{number}")


# ---- contacts and groups --------------------------------------------------------------------

@router.get("/contacts")
def contacts(request: Request, session: Session = Depends(current_session), q: str = "",
             group: str = "", edit: str = "") -> HTMLResponse:
    values: dict[str, str] = {}
    contact = pool_of(request, session).contact(edit) if edit else None
    if contact is not None:   # "Edit": the form below filled with the contact
        values = {"number": contact.number, "name": contact.name,
                  "groups": ", ".join(contact.groups)}
    return _contacts(request, session, values, {}, q=q, group=group)


def _contacts(request: Request, session: Session, values: dict[str, str],
              errors: dict[str, str], *, q: str = "", group: str = "",
              confirm: Any = None, status: int = 200) -> HTMLResponse:
    pool = pool_of(request, session)
    error = ""
    try:
        rows = pool.contacts(group=group or None, search=q.strip() or None)
    except NotFound as exc:
        rows, error = [], error_text(request, exc)
    return render(request, "contacts.html", {"contacts": rows[:500], "total": len(rows),
                                             "groups": pool.groups(), "q": q, "group": group,
                                             "error": error, "values": values, "errors": errors,
                                             "confirm": confirm}, session=session, status=status)


def _names(text: str) -> list[str]:
    """Group names or numbers as typed: separated by commas (either width) or new lines."""
    return [item.strip() for item in re.split(r"[,，;；\n]+", text) if item.strip()]


@router.post("/contacts")
async def add_contact(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {k: str(form.get(k, "")) for k in ("number", "name", "groups")}
    try:
        await run_in_threadpool(pool_of(request, session).upsert_contact, values["number"],
                                values["name"].strip(), groups=_names(values["groups"]))
    except Forbidden as exc:   # a page the account sees: refused there, in words (403)
        return _contacts(request, session, values, {"form": error_text(request, exc)}, status=403)
    except PoolError as exc:
        field = "number" if exc.code.startswith("number_") else \
            "groups" if exc.code.startswith("group_") else "form"
        return _contacts(request, session, values, {field: error_text(request, exc)}, status=400)
    return redirect("/contacts")


@router.post("/contacts/delete")
async def delete_contact(request: Request, session: Session = Depends(current_session)) -> Response:
    """Delete a contact (and its group memberships), after a confirmation on the page."""
    form = await form_of(request, session)
    number = str(form.get("number", ""))
    pool = pool_of(request, session)
    try:
        pool.require_sender("contacts")
        contact = pool.contact(number)
        if contact is None:
            return render(request, "not_found.html", session=session, status=404)
        if form.get("confirmed") != "yes":
            return _contacts(request, session, {}, {}, confirm=contact)
        await run_in_threadpool(pool.remove_contact, contact.number)
    except Forbidden as exc:
        return _contacts(request, session, {}, {"form": error_text(request, exc)}, status=403)
    except PoolError as exc:
        return _contacts(request, session, {}, {"form": error_text(request, exc)}, status=400)
    return redirect("/contacts")


# ---- groups: create, rename, delete, members ------------------------------------------------

@router.get("/groups")
def group_page(request: Request, session: Session = Depends(current_session),
               name: str = "") -> HTMLResponse:
    return _group(request, session, name, {}, {})


def _group(request: Request, session: Session, name: str, values: dict[str, str],
           errors: dict[str, str], status: int = 200) -> HTMLResponse:
    try:
        members = pool_of(request, session).contacts(group=name)
    except NotFound:
        return render(request, "not_found.html", session=session, status=404)
    return render(request, "group.html", {"name": name, "members": members, "values": values,
                                          "errors": errors}, session=session, status=status)


@router.post("/groups")
async def create_group(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {"group_name": str(form.get("group_name", ""))}
    try:
        await run_in_threadpool(pool_of(request, session).create_group, values["group_name"])
    except Forbidden as exc:
        return _contacts(request, session, values, {"form": error_text(request, exc)}, status=403)
    except PoolError as exc:
        return _contacts(request, session, values, {"group_name": error_text(request, exc)},
                         status=400)
    return redirect("/groups?name=" + quote(values["group_name"].strip()))


@router.post("/groups/{action}")
async def group_action(request: Request, action: str,
                       session: Session = Depends(current_session)) -> Response:
    """rename (new_name), delete (confirmed), add (numbers), drop (number) on the group `name`."""
    form = await form_of(request, session)
    name = str(form.get("name", ""))
    values = {k: str(form.get(k, "")) for k in ("new_name", "numbers", "number")}
    field = {"rename": "new_name", "delete": "confirmed", "add": "numbers"}.get(action, "form")
    try:
        pool = pool_of(request, session)
        if action == "rename":
            await run_in_threadpool(pool.rename_group, name, values["new_name"])
            name = values["new_name"].strip()
        elif action == "delete":
            if form.get("confirmed") != "yes":
                return _group(request, session, name, values, {"confirmed": translate(
                    request, "Tick the box to confirm: the group goes, its contacts stay.")},
                    status=400)
            await run_in_threadpool(pool.delete_group, name)
            return redirect("/contacts")
        elif action == "add":
            await run_in_threadpool(pool.add_to_group, name, _names(values["numbers"]))
        elif action == "drop":
            await run_in_threadpool(pool.remove_from_group, name, [values["number"]])
        else:
            return render(request, "not_found.html", session=session, status=404)
    except Forbidden as exc:
        return _group(request, session, name, values, {"form": error_text(request, exc)},
                      status=403)
    except NotFound as exc:
        if exc.code == "group_not_found":
            return render(request, "not_found.html", session=session, status=404)
        return _group(request, session, name, values, {field: error_text(request, exc)},
                      status=400)
    except PoolError as exc:
        return _group(request, session, name, values, {field: error_text(request, exc)},
                      status=400)
    return redirect("/groups?name=" + quote(name))


@router.get("/contacts/export")
async def export_contacts(request: Request, session: Session = Depends(current_session),
                          group: str = "", format: str = "csv") -> Response:
    import os

    from fastapi.responses import FileResponse
    from starlette.background import BackgroundTask

    suffix = ".xlsx" if format == "xlsx" else ".csv"
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="modempool-contacts-")
    os.close(handle)
    path = Path(name)
    try:
        await run_in_threadpool(pool_of(request, session).export_contacts, path,
                                group=group or None)
    except PoolError as exc:
        path.unlink(missing_ok=True)
        return render(request, "import.html", {"error": error_text(request, exc), "report": None},
                      session=session, status=400)
    return FileResponse(path, filename=f"contacts{'-' + group if group else ''}{suffix}",
                        background=BackgroundTask(path.unlink, missing_ok=True))


@router.get("/contacts/import")
def import_page(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    return render(request, "import.html", {"error": "", "report": None}, session=session)


@router.post("/contacts/import")
async def import_preview(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    upload = form.get("file")
    operator = operator_of(request, session)
    try:
        if upload is None or not hasattr(upload, "read"):
            raise PoolError("choose a file to upload", code="upload_missing")
        data = await upload.read()
        path, report = await run_in_threadpool(operator.preview_import, upload.filename or "",
                                               data, UPLOADS)
    except Forbidden as exc:
        return render(request, "import.html", {"error": error_text(request, exc), "report": None},
                      session=session, status=403)
    except PoolError as exc:
        return render(request, "import.html", {"error": error_text(request, exc), "report": None},
                      session=session, status=400)
    return render(request, "import.html", {"error": "", "report": report, "token": path.name,
                                           "group": str(form.get("group", ""))}, session=session)


@router.post("/contacts/import/confirm")
async def import_confirm(request: Request, session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    token = Path(str(form.get("token", ""))).name
    path = UPLOADS / token
    operator = operator_of(request, session)
    if not token or not path.is_file():
        return render(request, "import.html", {
            "error": translate(request, "The upload expired; upload the file again."),
            "report": None}, session=session, status=400)
    try:
        report = await run_in_threadpool(operator.confirm_import, path,
                                         skip_rejected=form.get("skip_rejected") == "yes",
                                         groups=[str(form.get("group", "")).strip()])
    except PoolError as exc:
        return render(request, "import.html", {"error": error_text(request, exc), "report": None},
                      session=session, status=400)
    return render(request, "import.html", {"error": "", "report": None, "done": report},
                  session=session)


# ---- opt-outs and blacklist -----------------------------------------------------------------

@router.get("/optouts")
def optouts(request: Request, session: Session = Depends(current_session)) -> HTMLResponse:
    return _optouts(request, session, {}, {})


def _optouts(request: Request, session: Session, values: dict[str, str],
             errors: dict[str, str], status: int = 200) -> HTMLResponse:
    pool = pool_of(request, session)
    return render(request, "optouts.html", {"optouts": pool.optout_list(),
                                            "blacklist": pool.blacklist(),
                                            "values": values, "errors": errors},
                  session=session, status=status)


@router.post("/optouts/{which}")
async def optout_change(request: Request, which: str,
                        session: Session = Depends(current_session)) -> Response:
    form = await form_of(request, session)
    values = {"number": str(form.get("number", "")), "reason": str(form.get("reason", ""))}
    pool = pool_of(request, session)
    number = values["number"]
    actions: dict[str, Any] = {
        "add": lambda: pool.add_optout(number),
        "remove": lambda: pool.remove_optout(number),
        "blacklist": lambda: pool.add_to_blacklist([number], values["reason"]),
        "unblacklist": lambda: pool.remove_from_blacklist(number)}
    if which not in actions:
        return render(request, "not_found.html", session=session, status=404)
    try:
        await run_in_threadpool(actions[which])
    except Forbidden as exc:   # the page is the account's to see: refused there, in words
        return _optouts(request, session, values, {"form": error_text(request, exc)}, status=403)
    except PoolError as exc:
        return _optouts(request, session, values, {which: error_text(request, exc)}, status=400)
    return redirect("/optouts")
