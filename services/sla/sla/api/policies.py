"""SLA policies: create (version 1), change (a new version), read, deactivate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.problem_handlers import problem_responses
from ccshared.problems import Conflict, NotFound, found_or_404
from ccshared.user_auth import AUTH_RESPONSES, reads_open_writes_supervised
from sla.api.deps import configs, engine_of, tracker
from sla.api.errors import invalid, unprocessable
from sla.api.schemas import PolicyView
from sla.db import policies as db
from sla.db.calendars import calendar_exists
from sla.db.tickets import open_tickets_on_policy
from sla.domain.definitions import PolicyCreate, PolicyDoc, policy_from_doc
from sla.domain.policy import InvalidPolicy, SlaPolicy

router = APIRouter(
    prefix="/v1/policies",
    tags=["policies"],
    dependencies=[Depends(reads_open_writes_supervised)],
    responses=AUTH_RESPONSES,
)

PolicyId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]

_ERRORS = problem_responses(
    {
        404: "No such policy (or version)",
        409: "A policy with this id exists, or another change was saved at the same moment",
        422: "Invalid policy; `errors` names each field at fault",
    }
)


def _view(row: Any, recomputed: int | None = None) -> PolicyView:
    return PolicyView(
        **PolicyDoc.model_validate(row.body).model_dump(),
        id=row.id,
        version=row.version,
        active=row.active,
        created_at=row.created_at,
        recomputed_open_tickets=recomputed,
    )


async def _validated(conn: AsyncConnection, policy_id: str, version: int, doc: PolicyDoc) -> None:
    try:
        policy_from_doc(policy_id, version, doc, active=True)
    except InvalidPolicy as exc:
        raise invalid(exc) from None
    if not await calendar_exists(conn, doc.calendar_id):
        raise unprocessable("body.calendar_id", f"no calendar {doc.calendar_id!r}")


async def _insert(
    conn: AsyncConnection, policy_id: str, version: int, doc: PolicyDoc, active: bool
) -> Any:
    row = await db.insert_version(conn, policy_id, version, doc, active=active)
    if row is None:
        raise Conflict(
            f"Policy {policy_id!r} version {version} exists already."
            if version == 1
            else f"Policy {policy_id!r} was changed at the same moment; retry."
        )
    return row


@router.get("", response_model=list[PolicyView], summary="The latest version of every policy")
async def list_policies(request: Request) -> list[PolicyView]:
    async with engine_of(request).connect() as conn:
        return [_view(r) for r in await db.latest_policies(conn)]


@router.post(
    "",
    status_code=201,
    response_model=PolicyView,
    summary="Create a policy (version 1)",
    responses=_ERRORS,
)
async def create_policy(body: PolicyCreate, request: Request) -> PolicyView:
    doc = PolicyDoc.model_validate(body.model_dump(exclude={"id"}))
    async with engine_of(request).begin() as conn:
        await _validated(conn, body.id, 1, doc)
        row = await _insert(conn, body.id, 1, doc, active=True)
    configs(request).invalidate()
    return _view(row)


@router.get("/{policy_id}", response_model=PolicyView, responses=_ERRORS)
async def get_policy(policy_id: PolicyId, request: Request) -> PolicyView:
    async with engine_of(request).connect() as conn:
        row = found_or_404(await db.latest_version(conn, policy_id), f"No policy {policy_id!r}.")
    return _view(row)


@router.get("/{policy_id}/versions", response_model=list[PolicyView], responses=_ERRORS)
async def list_versions(policy_id: PolicyId, request: Request) -> list[PolicyView]:
    async with engine_of(request).connect() as conn:
        rows = await db.policy_versions(conn, policy_id)
    if not rows:
        raise NotFound(f"No policy {policy_id!r}.")
    return [_view(r) for r in rows]


@router.get("/{policy_id}/versions/{version}", response_model=PolicyView, responses=_ERRORS)
async def get_version(
    policy_id: PolicyId, version: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request
) -> PolicyView:
    async with engine_of(request).connect() as conn:
        row = found_or_404(
            await db.policy_version(conn, policy_id, version),
            f"No version {version} of policy {policy_id!r}.",
        )
    return _view(row)


@router.put(
    "/{policy_id}",
    response_model=PolicyView,
    summary="Change a policy: saves a new version",
    description=(
        "New tickets get the new version. Open tickets keep the version they were matched "
        "with (`apply_to_open=keep`, the default) or move to the new one now "
        "(`apply_to_open=recompute`: business time already consumed stays, the rest counts "
        "against the new targets)."
    ),
    responses=_ERRORS,
)
async def change_policy(
    policy_id: PolicyId,
    body: PolicyDoc,
    request: Request,
    apply_to_open: Literal["keep", "recompute"] = "keep",
) -> PolicyView:
    async with engine_of(request).begin() as conn:
        latest = found_or_404(
            await db.latest_version(conn, policy_id),
            f"No policy {policy_id!r}; create it with POST /v1/policies.",
        )
        version = latest.version + 1
        await _validated(conn, policy_id, version, body)
        row = await _insert(conn, policy_id, version, body, active=latest.active)
        configs(request).invalidate()
        recomputed = None
        if apply_to_open == "recompute":
            policy = policy_from_doc(policy_id, version, body, active=latest.active)
            recomputed = await _recompute_open(conn, request, policy)
    configs(request).invalidate()
    return _view(row, recomputed)


async def _recompute_open(conn: AsyncConnection, request: Request, policy: SlaPolicy) -> int:
    """Move every open ticket on the policy to `policy` in this transaction (so the change and
    its effect on open tickets commit together)."""
    moved, after, now = 0, uuid.UUID(int=0), datetime.now(UTC)
    while batch := await open_tickets_on_policy(conn, policy.id, after, 500):
        for ticket_id in batch:
            moved += await tracker(request).move_to_version(conn, ticket_id, policy, now)
        after = batch[-1]
    return moved


@router.post(
    "/{policy_id}/deactivate",
    response_model=PolicyView,
    summary="Deactivate a policy: no new tickets match it and its tickets stop escalating",
    responses=_ERRORS,
)
async def deactivate_policy(policy_id: PolicyId, request: Request) -> PolicyView:
    async with engine_of(request).begin() as conn:
        row = await db.deactivate_policy(conn, policy_id)
        if row is None:
            raise NotFound(f"No policy {policy_id!r}.")
    configs(request).invalidate()
    return _view(row)
