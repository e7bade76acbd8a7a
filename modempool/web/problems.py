"""Errors as RFC 9457 problem details (`application/problem+json`).

Each library error class maps to one HTTP status and title here; the library's message (which
names the number, limit or state at fault) becomes `detail`. Anything unexpected becomes a 500
whose body says only that: the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from modempool.dispatch.requests import DaemonNotRunning, RequestFailed
from modempool.accounts import AccountError, Forbidden, QuotaExceeded, SimNotAllowed
from modempool.callback_guard import CallbackRefused
from modempool.errors import (InvalidNumber, NotFound, PoolError, Refused, RefusedMany,
                              RowError, UnknownSim)
from modempool.spool.database_errors import SpoolForbidden
from modempool.spool.model import StateConflict
from modempool.spool.unavailable import (SpoolOutcomeUnknown, SpoolUnavailable, driver_errors,
                                         unavailable)

log = logging.getLogger("modempool.web")

PROBLEM_TYPE = "application/problem+json"

# Library error -> (status, title). Order matters: subclasses before PoolError.
_MAPPING: list[tuple[type[Exception], int, str]] = [
    (NotFound, 404, "Not found"),
    (DaemonNotRunning, 503, "Daemon not running"),
    (RequestFailed, 502, "The modem or network did not do it"),
    (Forbidden, 403, "Forbidden"),
    (SimNotAllowed, 403, "SIM not allowed for this account"),
    (QuotaExceeded, 429, "Account quota exceeded"),
    (StateConflict, 409, "Not possible in the message's state"),
    (InvalidNumber, 422, "Invalid phone number"),
    (Refused, 422, "Number refused"),
    (RefusedMany, 422, "Numbers refused"),
    (UnknownSim, 422, "Unknown SIM"),
    (AccountError, 422, "Invalid account"),
    (CallbackRefused, 400, "Callback URL refused"),
    (SpoolUnavailable, 503, "Database unavailable"),
    (PoolError, 422, "Request refused"),
]


def problem(status: int, title: str, detail: str | None = None, *,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem document; `extra` members are added to it (e.g. `errors`)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def for_error(error: Exception) -> JSONResponse:
    for kind, status, title in _MAPPING:
        if isinstance(error, kind):
            return problem(status, title, str(error))
    raise error


def for_row(error: RowError, field: str) -> JSONResponse:
    """A batch's bad row (`RowError`, its row from 1) with the status and title of its
    problem, and `errors` naming the entry as the validation problems do (`to.99999`: the
    index from 0)."""
    for kind, status, title in _MAPPING:
        if isinstance(error.problem, kind):
            return problem(status, title, str(error), errors=[
                {"field": f"{field}.{error.row - 1}", "problem": str(error.problem)}])
    raise error


def _kannel(request: Request) -> bool:
    """Whether the request is Kannel's sendsms, whose clients read plain-text answers."""
    return request.url.path.startswith("/cgi-bin/")


def _validation(request: Request, exc: RequestValidationError) -> Response:
    errors = []
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            return problem(400, "Malformed JSON", "the request body is not valid JSON")
        location = ".".join(str(part) for part in item.get("loc", ())  # no type tags
                            if part != "body" and not any(c in str(part) for c in "[-"))
        entry = {"field": location, "problem": item.get("msg", "invalid")}
        if entry not in errors:
            errors.append(entry)
    summary = "; ".join(f"{e['field'] or 'body'}: {e['problem']}" for e in errors[:5])
    if _kannel(request):   # its parameters by name (`dlr-mask`)
        named = "; ".join(f"{item['loc'][-1]}: {item.get('msg', 'invalid')}" for item in exc.errors()[:5])
        return PlainTextResponse(f"Rejected: {named}", status_code=400)
    return problem(422, "Invalid request", summary + ("; nothing was queued"
                   if request.method == "POST" else ""), errors=errors[:20])


def _http(request: Request, exc: StarletteHTTPException) -> Response:
    titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized",
              413: "Request body too large", 429: "Too many requests"}
    detail = exc.detail if isinstance(exc.detail, str) else None
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):  # FastAPI's JSON read
        return problem(400, "Malformed JSON", f"the request body is not valid UTF-8 (byte "
                       f"0x{cause.object[cause.start]:02x} at offset {cause.start})")
    if _kannel(request) and detail:   # the address throttle's 429, a body over the limit
        return PlainTextResponse(f"Rejected: {detail}", status_code=exc.status_code,
                                 headers=getattr(exc, "headers", None))
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.url.path}"
    return problem(exc.status_code, titles.get(exc.status_code, "Error"), detail,
                   headers=getattr(exc, "headers", None))


def _library(request: Request, exc: PoolError) -> JSONResponse:
    return for_error(exc)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal error", "the server failed to answer; the error is in its log")


def database(request: Request, exc: Exception) -> Response:
    """A database error: a 503 with Retry-After and one log line when the database cannot
    answer now (`spool.unavailable`: down, connection lost, a lock timeout...), a 500 with its
    traceback logged otherwise."""
    found = unavailable(exc)
    if found is None:
        return _unexpected(request, exc)
    log.warning("503 on %s %s: %s [%s]", request.method, request.url.path, found, found.reason)
    headers = {"Retry-After": str(found.retry_after)}
    if _kannel(request) and isinstance(found, SpoolOutcomeUnknown):   # no retry: maybe sent
        return PlainTextResponse(f"Result unknown: {found}", status_code=503, headers=headers)
    if _kannel(request):
        return PlainTextResponse(f"Temporary failure, try again later: {found}",
                                 status_code=503, headers=headers)
    return problem(503, "Database unavailable", str(found), headers=headers)


def _misconfigured(request: Request, exc: SpoolForbidden) -> Response:
    """The server's database role lacks a right (`SpoolForbidden`): the server's fault, not
    the request's. A 500 whose body says so in one line (the role and the GRANT are for the
    operator: its log, one line)."""
    log.error("500 on %s %s: %s", request.method, request.url.path, exc)
    detail = ("the server's database account lacks a right it needs; nothing was changed, "
              "the missing grant is in the server's log")
    if _kannel(request):
        return PlainTextResponse(f"Internal error: {detail}", status_code=500)
    return problem(500, "Server misconfigured", detail)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(PoolError, _library)
    app.add_exception_handler(SpoolForbidden, _misconfigured)
    for kind in (SpoolUnavailable, *driver_errors()):   # handled here: not re-raised to the server
        app.add_exception_handler(kind, database)
    app.add_exception_handler(Exception, _unexpected)

