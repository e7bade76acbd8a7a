"""Contacts, groups and imports; campaigns; opt-outs and the blacklist, over `AccountPool`
(`Pool.for_account`), which holds who may do what: everyone reads the address book, senders
change it, campaigns and opt-outs are the bank's (admins)."""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from modempool.account_pool import AccountPool
from modempool.errors import PoolError
from modempool.web.routes_messages import account_pool

router = APIRouter(prefix="/v1")

Number = Annotated[str, Path(min_length=1, max_length=40)]
CampaignId = Annotated[int, Path(ge=1, le=2**62)]
UPLOAD_LIMIT = 20 * 1024 * 1024


# ---- contacts and groups ---------------------------------------------------------------------

class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200)
    fields: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=50)
    birthday: str | None = Field(None, max_length=32,
                                 examples=["1990-05-17", "05-17", "1990年05月17日"])
    notes: str = Field("", max_length=2000)
    groups: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list,
                                                                                max_length=100)


@router.get("/contacts", tags=["contacts"], summary="The address book (通讯录)")
def list_contacts(op: AccountPool = Depends(account_pool),
                  group: Annotated[str | None, Query(max_length=100)] = None,
                  search: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    return {"contacts": [c.as_dict() for c in op.contacts(group=group, search=search)]}


@router.put("/contacts/{number}", tags=["contacts"], summary="Add or update a contact")
def put_contact(number: Number, body: ContactIn, op: AccountPool = Depends(account_pool)) -> dict:
    return op.upsert_contact(number, body.name, fields=body.fields, birthday=body.birthday,
                             notes=body.notes, groups=body.groups).as_dict()


@router.delete("/contacts/{number}", tags=["contacts"], status_code=204,
               summary="Remove a contact")
def delete_contact(number: Number, op: AccountPool = Depends(account_pool)) -> None:
    op.remove_contact(number)


@router.get("/groups", tags=["contacts"], summary="Contact groups (分组)")
def list_groups(op: AccountPool = Depends(account_pool)) -> dict[str, Any]:
    return {"groups": op.groups()}


@router.post("/contacts/import", tags=["contacts"],
             summary="Import contacts from CSV, XLSX or TXT (all rows, or the good ones)")
async def import_contacts(file: UploadFile, op: AccountPool = Depends(account_pool),
                          skip_rejected: bool = False,
                          group: Annotated[list[str] | None, Query(max_length=20)] = None) -> Any:
    data = await file.read(UPLOAD_LIMIT + 1)
    if len(data) > UPLOAD_LIMIT:
        raise PoolError(f"the file is larger than {UPLOAD_LIMIT // (1024 * 1024)} MB")

    def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="modempool-import-") as tmp:
            path, _ = op.preview_import(file.filename or "contacts.csv", data, FilePath(tmp))
            answer = op.confirm_import(path, skip_rejected=skip_rejected, groups=group or ())
            return {k: v for k, v in answer.as_dict().items() if k != "path"}  # a temporary file

    return await run_in_threadpool(run)


# ---- campaigns ---------------------------------------------------------------------------------

class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=5000, description="Template: {name} or any field")
    to: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list,
                                                                          max_length=100_000)
    groups: str | None = Field(None, max_length=500, description="Groups as A+B-C")
    kind: Literal["marketing", "notice"] = "marketing"
    rate_per_minute: float | None = Field(None, gt=0, le=100_000)
    sims: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(None, max_length=512)


@router.get("/campaigns", tags=["campaigns"],
            summary="Campaigns (群发): an admin's all, a sender's its own, a viewer looks at all")
def list_campaigns(op: AccountPool = Depends(account_pool)) -> dict[str, Any]:
    return {"campaigns": [c.as_dict() for c in op.campaign_desk().list()]}


@router.post("/campaigns", tags=["campaigns"], status_code=201, summary="Create a campaign (draft)")
def create_campaign(body: CampaignIn, op: AccountPool = Depends(account_pool)) -> dict[str, Any]:
    from modempool.operator.contacts import Selection, parse_selection

    campaigns = op.campaign_desk()
    selection = parse_selection(body.groups) if body.groups else Selection()
    return campaigns.create(body.name, body.text, numbers=body.to, groups=selection, kind=body.kind,
                            rate_per_minute=body.rate_per_minute, sims=body.sims).as_dict()


@router.get("/campaigns/{campaign_id}", tags=["campaigns"], summary="A campaign and its progress")
def get_campaign(campaign_id: CampaignId, op: AccountPool = Depends(account_pool)) -> dict:
    desk = op.campaign_desk()
    campaign = desk.get(campaign_id).as_dict()
    return {**campaign, "progress": desk.progress(campaign_id).to_dict()}


@router.get("/campaigns/{campaign_id}/preview", tags=["campaigns"],
            summary="Recipients, cost and problems before starting")
def preview_campaign(campaign_id: CampaignId, op: AccountPool = Depends(account_pool),
                     sample: Annotated[int, Query(ge=0, le=100)] = 3) -> dict[str, Any]:
    plan = op.campaign_desk().plan(campaign_id)
    return {"recipients": len(plan.recipients), "total_parts": plan.total_parts,
            "duplicates": plan.duplicates, "excluded_optout": list(plan.excluded_optout),
            "problems": list(plan.problems), "notes": list(plan.notes),
            "sample": [{"number": r.number, "text": r.text} for r in plan.recipients[:sample]]}


@router.post("/campaigns/{campaign_id}/{action}", tags=["campaigns"],
             summary="start, pause or resume a campaign")
def campaign_action(campaign_id: CampaignId, action: Literal["start", "pause", "resume"],
                    op: AccountPool = Depends(account_pool),
                    skip_problems: bool = False) -> dict[str, Any]:
    campaigns = op.campaign_desk()
    if action == "start":
        return {"started": campaigns.start(campaign_id, skip_problems=skip_problems).to_dict()}
    return getattr(campaigns, action)(campaign_id).as_dict()


# ---- opt-outs and the blacklist -----------------------------------------------------------------

class NumbersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numbers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(min_length=1,
                                                                               max_length=100_000)
    reason: str = Field("", max_length=200)


@router.get("/optouts", tags=["opt-outs"], summary="Numbers that opted out (退订)")
def list_optouts(op: AccountPool = Depends(account_pool)) -> dict[str, Any]:
    return {"optouts": op.optout_list()}


@router.post("/optouts", tags=["opt-outs"], summary="Opt numbers out")
def add_optouts(body: NumbersIn, op: AccountPool = Depends(account_pool)) -> dict[str, int]:
    return {"added": op.add_optouts(body.numbers, source="api")}


@router.delete("/optouts/{number}", tags=["opt-outs"], status_code=204)
def remove_optout(number: Number, op: AccountPool = Depends(account_pool)) -> None:
    op.remove_optout(number)


@router.get("/blacklist", tags=["opt-outs"], summary="Numbers that never get anything (黑名单)")
def list_blacklist(op: AccountPool = Depends(account_pool)) -> dict[str, Any]:
    return {"blacklist": op.blacklist()}


@router.post("/blacklist", tags=["opt-outs"], summary="Blacklist numbers")
def add_blacklist(body: NumbersIn, op: AccountPool = Depends(account_pool)) -> dict[str, int]:
    return {"added": op.add_to_blacklist(body.numbers, reason=body.reason)}


@router.delete("/blacklist/{number}", tags=["opt-outs"], status_code=204)
def remove_blacklist(number: Number, op: AccountPool = Depends(account_pool)) -> None:
    op.remove_from_blacklist(number)

