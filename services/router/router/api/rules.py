"""The classification rules (category, priority, queue hint); a supervisor replaces them."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Parts, Supervisor
from router.api.schemas import ClassificationRuleIn, ClassificationRulesIn, ClassificationRulesOut
from router.bootstrap import RouterParts
from router.domain.classification import rule_document
from router.handlers import rules as handlers

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(principal)],
    responses=AUTH_RESPONSES,
    tags=["classification rules"],
)


@router.get(
    "/classification-rules",
    response_model=ClassificationRulesOut,
    summary="The classification rules in force (category, priority, queue hint), in order",
)
async def get_rules(engine: AsyncEngine = Engine) -> ClassificationRulesOut:
    current = await handlers.current_rules(engine)
    rules = [ClassificationRuleIn(**rule_document(r)) for r in current.rules]
    return ClassificationRulesOut(
        version=current.version, created_by=current.created_by, rules=rules
    )


@router.put(
    "/classification-rules",
    response_model=ClassificationRulesOut,
    summary="Replace the classification rules: a new version, for tickets opened from now on "
    "(supervisor)",
)
async def put_rules(
    body: ClassificationRulesIn,
    user: Principal = Supervisor,
    engine: AsyncEngine = Engine,
    parts: RouterParts = Parts,
) -> ClassificationRulesOut:
    documents = [r.model_dump() for r in body.rules]
    saved = await handlers.replace_rules(engine, parts.rules, documents, user.actor)
    return ClassificationRulesOut(version=saved.version, created_by=user.actor, rules=body.rules)
