"""The routing policy: ordered steps, condition → queue; a supervisor replaces it."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Parts, Supervisor
from router.api.schemas import PolicyIn, PolicyOut, PolicyStepIn
from router.bootstrap import RouterParts
from router.db.policies import step_document
from router.handlers import policy as handlers

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(principal)],
    responses=AUTH_RESPONSES,
    tags=["routing policy"],
)


@router.get(
    "/routing-policy",
    response_model=PolicyOut,
    summary="The routing policy in force: ordered steps, condition → queue",
)
async def get_policy(engine: AsyncEngine = Engine) -> PolicyOut:
    policy = await handlers.current_policy(engine)
    steps = [PolicyStepIn(**step_document(s)) for s in policy.steps]
    return PolicyOut(version=policy.version, steps=steps)


@router.put(
    "/routing-policy",
    response_model=PolicyOut,
    summary="Replace the policy: a new version, in force at once on every replica",
)
async def put_policy(
    body: PolicyIn,
    user: Principal = Supervisor,
    engine: AsyncEngine = Engine,
    parts: RouterParts = Parts,
) -> PolicyOut:
    steps = [s.model_dump() for s in body.steps]
    policy = await handlers.replace_policy(engine, parts.policies, steps, user.actor)
    return PolicyOut(version=policy.version, steps=body.steps)
