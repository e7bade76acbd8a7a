"""`/v1/messages`: send, read, list, cancel, retry. Each route translates the request into one
`AccountPool` call (where every rule lives) and the result into JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from modempool.account_pool import AccountPool, QueuedBatch
from modempool.accounts import Account
from modempool.batch_send import CHUNK
from modempool.errors import RowError
from modempool.spool.model import Message, to_text
from modempool.web.auth import BEARER_SECURITY, current_account, request_account
from modempool.web.problems import for_row, problem
from modempool.web.send_body import REQUEST_BODY, MalformedBody, SendRequest, read_send
from modempool.web.state import GROUPED_SENDS_UP_TO

router = APIRouter(prefix="/v1", tags=["messages"])

States = Literal["queued", "sending", "sent", "delivered", "failed", "expired", "cancelled", "ambiguous"]
MessageId = Annotated[int, Path(ge=1, le=2**62)]


class QueuedOut(BaseModel):
    id: int
    to: str
    state: str
    parts: int


class SendResponse(BaseModel):
    count: int
    messages: list[QueuedOut]


class PartOut(BaseModel):
    seq: int
    total: int | None
    state: str
    sim: str | None
    sent_at: str | None
    status: int | None
    status_at: str | None


class MessageOut(BaseModel):
    id: int
    to: str
    text: str
    state: str
    sim: str | None
    attempts: int
    priority: int
    error: str | None
    client_id: str | None
    parts_total: int | None
    created_at: str | None
    updated_at: str | None
    not_before: str | None
    expires_at: str | None
    sent_at: str | None
    delivered_at: str | None
    parts: list[PartOut] | None = None


class MessageList(BaseModel):
    messages: list[MessageOut]
    next_cursor: str | None


async def account_pool(request: Request, account: Account = Depends(current_account)) -> AccountPool:
    """The pool as the caller's account sees it (a dependency for routes)."""
    return request.app.state.api.pool.for_account(account)


def message_out(pool: AccountPool, message: Message, parts: list[dict[str, Any]] | None = None) -> dict:
    out = {
        "id": message.id, "to": message.to, "text": message.text, "state": message.state.value,
        "sim": message.sim, "attempts": message.attempts, "priority": message.priority,
        "error": message.error, "client_id": pool.client_id(message),
        "parts_total": message.parts_total,
    }
    for key in ("created_at", "updated_at", "not_before", "expires_at", "sent_at", "delivered_at"):
        out[key] = to_text(getattr(message, key))
    if parts is not None:
        out["parts"] = [{k: p.get(k) for k in PartOut.model_fields} for p in parts]
    return out


IDEMPOTENCY_KEY = {"name": "idempotency-key", "in": "header", "required": False,
                   "schema": {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}],
                              "title": "Idempotency-Key"}}


@router.post("/messages", status_code=202, response_model=SendResponse,
             summary="Queue a text to one or many numbers (all or nothing)",
             openapi_extra={**BEARER_SECURITY, "parameters": [IDEMPOTENCY_KEY],
                            "requestBody": REQUEST_BODY})
async def send_messages(request: Request) -> Response:
    # The key and the Idempotency-Key header are read here, not as dependencies: on the
    # busiest route, FastAPI's solving of them cost more than the rest of the request. The
    # body is read here too, as it arrives (send_body.py): a 100,000-number batch is never
    # held whole.
    account = await request_account(request)
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and len(idempotency_key) > 200:
        raise RequestValidationError([{
            "type": "string_too_long", "loc": ("header", "idempotency-key"),
            "msg": "String should have at most 200 characters", "input": idempotency_key}])
    try:
        body = await read_send(request)
    except MalformedBody as exc:
        return problem(400, "Malformed JSON", str(exc))
    fields = body if isinstance(body, SendRequest) else body.request
    if isinstance(body, SendRequest) or body.recipients is None:
        listed = [fields.to] if isinstance(fields.to, str) else fields.to
        count, chunks = len(listed), _slices(listed, CHUNK)
    else:
        count, chunks = len(body.recipients), body.recipients.chunks(CHUNK)
    api = request.app.state.api
    pool = api.pool.for_account(account)
    options = dict(not_before=fields.at, expires_at=fields.expires, priority=fields.priority,
                   sims=fields.sims, client_id=idempotency_key or fields.client_id)
    try:
        if count > GROUPED_SENDS_UP_TO:   # chunk by chunk, answered a page at a time
            batch = await run_in_threadpool(pool.send_chunks, chunks, fields.text,
                                             count=count, **options)
            return StreamingResponse(_batch_answer(pool, batch), status_code=202,
                                     media_type="application/json")
        numbers = [number for chunk in chunks for number in chunk]
        queued = await api.send(pool.plan_send(numbers, fields.text, **options))
    except RowError as exc:
        return for_row(exc, "to")
    return JSONResponse({"count": len(queued), "messages": [q.to_dict() for q in queued]},
                        status_code=202)


def _slices(numbers: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(numbers), size):
        yield numbers[start:start + size]


def _batch_answer(pool: AccountPool, batch: QueuedBatch) -> Iterator[bytes]:
    """The answer to a batch, written a page of messages at a time (each page read from the
    spool when the client has taken the one before)."""
    yield b'{"count":%d,"messages":[' % len(batch)
    separator = b""
    for page in pool.queued_pages(batch):
        yield separator + json.dumps([q.to_dict() for q in page], ensure_ascii=False,
                                           separators=(",", ":"))[1:-1].encode()
        separator = b","
    yield b"]}"


@router.get("/messages/{message_id}", response_model=MessageOut,
            summary="One message: state, SIM, parts, attempts, error, times")
def get_message(message_id: MessageId, pool: AccountPool = Depends(account_pool)) -> dict:
    message = pool.get(message_id)
    return message_out(pool, message, pool.parts(message_id))


@router.get("/messages", response_model=MessageList, summary="The account's messages, oldest first")
def list_messages(pool: AccountPool = Depends(account_pool), state: States | None = None,
                  to: Annotated[str | None, Query(max_length=40)] = None,
                  cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    messages, next_id = pool.list(state=state, to=to, after=int(cursor) if cursor else None,
                                  limit=limit)
    return {"messages": [message_out(pool, m) for m in messages],
            "next_cursor": str(next_id) if next_id is not None else None}


@router.post("/messages/{message_id}/cancel", response_model=MessageOut,
             summary="Cancel a queued message")
def cancel_message(message_id: MessageId, pool: AccountPool = Depends(account_pool)) -> dict:
    return message_out(pool, pool.cancel(message_id))


@router.post("/messages/{message_id}/retry", response_model=MessageOut,
             summary="Queue a failed, expired or ambiguous message again")
def retry_message(message_id: MessageId, pool: AccountPool = Depends(account_pool)) -> dict:
    return message_out(pool, pool.retry(message_id))
