"""Inbound SMS, SIM status and USSD, the cost of a text, health, readiness and metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from modempool.account_pool import AccountPool
from modempool.web.problems import problem
from modempool.web.routes_messages import account_pool

router = APIRouter()


class InboundOut(BaseModel):
    id: int
    sender: str = Field(alias="from")
    name: str | None
    groups: list[str]
    sim: str | None
    text: str
    received_at: str | None
    parts: int
    complete: bool


class InboundList(BaseModel):
    messages: list[InboundOut]
    next_cursor: str | None


@router.get("/v1/inbound", response_model=InboundList, response_model_by_alias=True, tags=["inbound"],
            summary="Received SMS, oldest first, with the sender's contact name")
def inbound(pool: AccountPool = Depends(account_pool),
            since: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
            cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    received, next_id = pool.inbound(since=since, after=int(cursor) if cursor else None, limit=limit)
    return {"messages": [{**r.to_dict(), "from": r.message.sender, "name": r.name or None}
                         for r in received],
            "next_cursor": str(next_id) if next_id is not None else None}


@router.get("/v1/sims", tags=["sims"],
            summary="Each SIM: state, signal, operator, own number, counters against quotas, last error")
def sims(pool: AccountPool = Depends(account_pool)) -> dict[str, Any]:
    return {"sims": [sim.to_dict() for sim in pool.sims()]}


class UssdRequest(BaseModel):
    code: str = Field(min_length=2, max_length=32, pattern=r"^[0-9*#+]+$", examples=["*100#"])


class UssdOut(BaseModel):
    sim: str
    code: str
    text: str
    answered_at: str | None


@router.post("/v1/sims/{name}/ussd", tags=["sims"], response_model=UssdOut,
             summary="Run a USSD code (such as *100#) through the daemon that owns the modem",
             responses={503: {"description": "No daemon runs"},
                        502: {"description": "The SIM is not up, or the network refused or did not answer"}})
def ussd(name: Annotated[str, Path(max_length=64)], body: UssdRequest,
         pool: AccountPool = Depends(account_pool)) -> Any:
    return pool.ussd(name, body.code).to_dict()


class CostOut(BaseModel):
    parts: int
    alphabet: str
    characters: int
    chars_left: int
    units: int
    units_per_part: int


@router.get("/v1/cost", response_model=CostOut, tags=["messages"],
            summary="Parts, alphabet and characters left for a text (no key needed)")
def cost(text: Annotated[str, Query(min_length=1, max_length=40_000)]) -> Any:
    from pdu import PduError, parts_needed

    try:
        result = parts_needed(text)
    except PduError as exc:
        return problem(422, "Text cannot be sent as SMS", str(exc))
    return {"parts": result.parts, "alphabet": result.alphabet.value, "characters": len(text),
            "chars_left": result.chars_left, "units": result.units,
            "units_per_part": result.units_per_part}


@router.get("/healthz", tags=["health"], summary="The process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"],
            summary="Ready: the spool is writable and at least one SIM is up",
            responses={503: {"description": "Not ready; `detail` says why"}})
def readyz(request: Request) -> Any:
    api = request.app.state.api
    try:
        api.spool.check_writable()
    except Exception as exc:  # locked for longer than busy_timeout, read-only, disk gone
        return problem(503, "Not ready", f"the spool is not writable: {type(exc).__name__}")
    up = [sim.name for sim in api.pool.status().sims if sim.state == "up"]
    if not up:
        return problem(503, "Not ready", "no SIM is up (is `modempool run` running?)")
    return {"status": "ready", "sims_up": len(up)}


@router.get("/metrics", tags=["health"], summary="Prometheus metrics",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.api.registry), media_type=CONTENT_TYPE_LATEST)
