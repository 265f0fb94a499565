"""The routing policy: reading the one in force, replacing it with a new version (checked
first: conditions that compile, queues that exist), in force at once on this replica."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.problems import FieldError, Problem
from router.db import queues as queues_db
from router.db.policies import PolicyCache, load_policy, policy_from_documents, save_policy
from router.domain.policy import InvalidPolicy, RoutingPolicy


async def current_policy(engine: AsyncEngine) -> RoutingPolicy:
    async with engine.connect() as conn:
        return await load_policy(conn)


def _invalid(steps: list[dict[str, Any]], exc: InvalidPolicy) -> Problem:
    index = next((i for i, s in enumerate(steps) if s["id"] == exc.step_id), None)
    field = f"body.steps.{index}.condition" if index is not None else "body.steps"
    return Problem(
        str(exc),
        status=422,
        slug="validation-error",
        errors=[FieldError(field=field, message=str(exc), type="invalid_policy")],
        extra={"position": getattr(exc, "position", None)},
    )


def _unknown_queue(i: int, step: dict[str, Any]) -> Problem:
    return Problem(
        f"Step {step['id']} routes to unknown queue {step['queue_id']}.",
        status=422,
        slug="validation-error",
        errors=[
            FieldError(
                field=f"body.steps.{i}.queue_id", message="unknown queue", type="unknown_queue"
            )
        ],
    )


async def replace_policy(
    engine: AsyncEngine, cache: PolicyCache, steps: list[dict[str, Any]], actor: str
) -> RoutingPolicy:
    try:
        policy_from_documents(0, steps)
    except InvalidPolicy as exc:
        raise _invalid(steps, exc) from None
    async with engine.begin() as conn:
        known = await queues_db.queue_ids(conn)
        for i, step in enumerate(steps):
            if step["queue_id"] not in known:
                raise _unknown_queue(i, step)
        policy = await save_policy(conn, steps, actor)
    cache.invalidate()
    return policy
