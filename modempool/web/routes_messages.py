"""`/v1/messages`: send, read, list, cancel, retry. Each route translates the request into one
`AccountPool` call (where every rule lives) and the result into JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from modempool.account_pool import AccountPool
from modempool.accounts import Account
from modempool.spool.model import Message, to_text
from modempool.web.auth import BEARER_SECURITY, current_account, request_account

router = APIRouter(prefix="/v1", tags=["messages"])

MAX_RECIPIENTS = 100_000
MAX_TEXT = 40_000          # 255 parts of 153 GSM characters, a little over
States = Literal["queued", "sending", "sent", "delivered", "failed", "expired", "cancelled", "ambiguous"]
Number = Annotated[str, Field(min_length=1, max_length=40, examples=["13800138000"])]
MessageId = Annotated[int, Path(ge=1, le=2**62)]


class SendRequest(BaseModel):
    """One text to one or many numbers."""

    model_config = ConfigDict(extra="forbid")

    to: Number | Annotated[list[Number], Field(min_length=1, max_length=MAX_RECIPIENTS)]
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    at: datetime | None = Field(None, description="Not before this time (ISO 8601; naive = server local)")
    expires: datetime | None = Field(None, description="Give up if not sent by then")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher goes first")
    sims: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=512, description="Only through these SIMs (within the account's)")
    client_id: str | None = Field(None, min_length=1, max_length=200,
                                  description="Idempotency key; a retry returns the same messages")


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
             openapi_extra={**BEARER_SECURITY, "parameters": [IDEMPOTENCY_KEY]})
async def send_messages(request: Request, body: SendRequest) -> JSONResponse:
    # The key and the Idempotency-Key header are read here, not as dependencies: on the
    # busiest route, FastAPI's solving of them cost more than the rest of the request.
    account = await request_account(request)
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and len(idempotency_key) > 200:
        raise RequestValidationError([{
            "type": "string_too_long", "loc": ("header", "idempotency-key"),
            "msg": "String should have at most 200 characters", "input": idempotency_key}])
    api = request.app.state.api
    pool = api.pool.for_account(account)
    numbers = [body.to] if isinstance(body.to, str) else body.to
    queued = await api.send(pool.plan_send(
        numbers, body.text, not_before=body.at, expires_at=body.expires, priority=body.priority,
        sims=body.sims, client_id=idempotency_key or body.client_id))
    return JSONResponse({"count": len(queued), "messages": [q.to_dict() for q in queued]},
                        status_code=202)


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
