"""Canned responses (macros) per queue and language: supervisors create, change and remove
them; an agent lists those of the queues they serve, a supervisor every one."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Supervisor, User
from router.api.schemas import CannedResponseIn, CannedResponseOut
from router.handlers import canned

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(principal)],
    responses=AUTH_RESPONSES,
    tags=["canned responses"],
)


@router.get(
    "/canned-responses",
    response_model=list[CannedResponseOut],
    summary="Canned responses by queue, language and title",
    description="A supervisor sees every one; an agent those of the queues they serve.",
)
async def list_canned(
    user: Principal = User,
    engine: AsyncEngine = Engine,
    queue_id: str | None = None,
    language: str | None = None,
) -> list[CannedResponseOut]:
    found = await canned.list_canned(engine, user, queue_id=queue_id, language=language)
    return [CannedResponseOut(**c) for c in found]


@router.post(
    "/canned-responses",
    response_model=CannedResponseOut,
    status_code=201,
    summary="Create a canned response (supervisor)",
)
async def create_canned(
    body: CannedResponseIn, user: Principal = Supervisor, engine: AsyncEngine = Engine
) -> CannedResponseOut:
    return CannedResponseOut(**await canned.create_canned(engine, user, **body.model_dump()))


@router.put(
    "/canned-responses/{canned_id}",
    response_model=CannedResponseOut,
    summary="Change a canned response (supervisor)",
)
async def put_canned(
    canned_id: uuid.UUID,
    body: CannedResponseIn,
    user: Principal = Supervisor,
    engine: AsyncEngine = Engine,
) -> CannedResponseOut:
    return CannedResponseOut(**await canned.update_canned(engine, canned_id, **body.model_dump()))


@router.delete(
    "/canned-responses/{canned_id}",
    status_code=204,
    summary="Remove a canned response (supervisor)",
)
async def delete_canned(
    canned_id: uuid.UUID, user: Principal = Supervisor, engine: AsyncEngine = Engine
) -> Response:
    await canned.delete_canned(engine, canned_id)
    return Response(status_code=204)
