"""Kannel's `sendsms` interface, so that a system written for Kannel switches by changing one URL:

    GET /cgi-bin/sendsms?username=NAME&password=KEY&to=13800138000&text=...

`username`/`password` are an account name and its key. `to` may hold several numbers
separated by spaces (`+` in a query string). `charset` names the encoding of `text`
(UTF-8 by default; GBK, GB2312, UCS-2/UTF-16BE...). `coding` 0 and 2 are accepted (the
alphabet is chosen from the text anyway); 1 (8-bit binary) is refused. `dlr-url` is called
(GET) when the message's state changes as `dlr-mask` asks, with `%d` replaced by Kannel's
status (1 delivered, 2 undelivered, 8 sent to the network, 16 refused) and `%p` by the
recipient; a `dlr-url` the box may not call (not http(s), or a host on a loopback, private,
link-local... address not in `[http] callback_allow`: modempool/callback_guard.py) is
refused with 400 and nothing queued. Answers are Kannel's: `0: Accepted for delivery` with 202, plain text.
"""

from __future__ import annotations

import codecs
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.concurrency import run_in_threadpool

from modempool.errors import PoolError
from modempool.spool.database_errors import SpoolForbidden
from modempool.spool.unavailable import SpoolUnavailable
from modempool.web.auth import check_name_key
from modempool.web.problems import _MAPPING

router = APIRouter(tags=["kannel"])

_CHARSETS = {"ucs-2": "utf-16-be", "ucs2": "utf-16-be", "utf-16": "utf-16-be",
             "utf16": "utf-16-be", "utf-16be": "utf-16-be"}


def _answer(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


def _decode(raw: bytes, charset: str) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding=charset,
                          errors="strict"))


async def _params(request: Request) -> dict[str, str]:
    """The parameters, with `text` decoded in the charset the client names."""
    raw = request.url.query.encode("latin-1", "replace")
    if request.method == "POST":
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if body and "application/x-www-form-urlencoded" in content_type:
            raw = raw + b"&" + body if raw else body
    first = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"))
    charset = (first.get("charset") or "UTF-8").strip().lower()
    charset = _CHARSETS.get(charset, charset)
    try:
        text_codec = getattr(codecs.lookup(charset), "_is_text_encoding", True)
    except (LookupError, ValueError):   # ValueError: a NUL in the name
        text_codec = False
    if not text_codec:   # base64, rot13, zlib... are codecs, but not charsets
        raise ValueError(f"unknown charset {first.get('charset', '').replace(chr(0), '')!r}")
    try:
        return _decode(raw, charset)
    except UnicodeDecodeError:
        raise ValueError(f"text is not valid {first.get('charset') or 'UTF-8'}") from None


async def sendsms(request: Request,
                  username: str | None = Query(None, max_length=64, description="Account name"),
                  password: str | None = Query(None, max_length=200, description="The account's key"),
                  to: str | None = Query(None, max_length=2000, description="Numbers, space-separated"),
                  text: str | None = Query(None, max_length=40_000),
                  charset: str | None = Query(None, max_length=40, description="Encoding of text"),
                  coding: str | None = Query(None, max_length=2, description="0 GSM, 2 UCS-2"),
                  dlr_mask: str | None = Query(None, alias="dlr-mask", max_length=4),
                  dlr_url: str | None = Query(None, alias="dlr-url", max_length=2000)) -> Any:
    try:
        params = await _params(request)
    except ValueError as exc:
        return _answer(400, f"Rejected: {exc}")
    name, key = params.get("username", ""), params.get("password", "")
    if not name or not key:
        return _answer(403, "Authorization failed for sendsms")
    account = await check_name_key(request, name, key)
    if account is None:
        return _answer(403, "Authorization failed for sendsms")
    numbers = params.get("to", "").split()  # a '+' in a query is a space: %2B is a plus
    if not numbers:
        return _answer(400, "Missing receiver number, rejected")
    if params.get("coding", "0") == "1":
        return _answer(400, "Rejected: coding 1 (8-bit binary data) is not supported")
    if params.get("coding", "0") not in ("", "0", "2"):
        return _answer(400, "Rejected: coding must be 0 (GSM 7-bit) or 2 (UCS-2)")
    message_text = params.get("text", "")
    if not message_text:
        return _answer(400, "Missing text, rejected")
    dlr = None
    if params.get("dlr-url"):
        try:
            mask = int(params.get("dlr-mask") or "31")
        except ValueError:
            return _answer(400, "Rejected: dlr-mask must be a number")
        dlr = (params["dlr-url"], mask)
    api = request.app.state.api
    pool = api.pool.for_account(account)
    try:
        planned = pool.plan_send(numbers, message_text, dlr=dlr)
        await run_in_threadpool(planned.check_callback)   # resolves the host
        await api.send(planned)
    except PoolError as exc:
        if isinstance(exc, (SpoolForbidden, SpoolUnavailable)):   # problems.py answers them
            raise
        status = next(s for kind, s, _ in _MAPPING if isinstance(exc, kind))
        return _answer(status, f"Rejected: {exc}")
    return _answer(202, "0: Accepted for delivery")


for _method in ("GET", "POST"):
    router.add_api_route(
        "/cgi-bin/sendsms", sendsms, methods=[_method], response_class=PlainTextResponse,
        operation_id=f"kannel_sendsms_{_method.lower()}",
        summary="Kannel-compatible send (username/password = account name/key)",
        responses={202: {"content": {"text/plain": {"example": "0: Accepted for delivery"}}}})
