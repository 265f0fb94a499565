"""Routing policies as stored (versioned step lists) and the in-process cache of the current one."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from router.db.current import CurrentVersion
from router.domain.policy import DEFAULT_POLICY, PolicyStep, RoutingPolicy, compile_step


def step_document(step: PolicyStep) -> dict[str, Any]:
    return {
        "id": step.id,
        "condition": step.condition.source,
        "queue_id": step.queue_id,
        "priority": step.priority,
        "timeout_s": step.timeout_s,
        "overflow_only": step.overflow_only,
    }


def policy_from_documents(version: int, steps: list[dict[str, Any]]) -> RoutingPolicy:
    """Compile stored steps; raises InvalidPolicy naming the step at fault."""
    return RoutingPolicy(
        version,
        tuple(
            compile_step(
                s["id"],
                s["condition"],
                s["queue_id"],
                priority=s.get("priority"),
                timeout_s=s.get("timeout_s"),
                overflow_only=bool(s.get("overflow_only")),
            )
            for s in steps
        ),
    )


async def ensure_default_policy(conn: AsyncConnection) -> None:
    await conn.execute(
        text(
            "INSERT INTO routing_policies (version, steps, created_by) "
            "VALUES (1, CAST(:steps AS jsonb), 'system') ON CONFLICT DO NOTHING"
        ),
        {"steps": orjson.dumps([step_document(s) for s in DEFAULT_POLICY.steps]).decode()},
    )


async def load_policy(conn: AsyncConnection, version: int | None = None) -> RoutingPolicy:
    query = (
        "SELECT version, steps FROM routing_policies ORDER BY version DESC LIMIT 1"
        if version is None
        else "SELECT version, steps FROM routing_policies WHERE version = :v"
    )
    row = (await conn.execute(text(query), {"v": version})).first()
    if row is None:
        return DEFAULT_POLICY
    steps = row.steps if isinstance(row.steps, list) else orjson.loads(row.steps)
    return policy_from_documents(row.version, steps)


async def save_policy(
    conn: AsyncConnection, steps: list[dict[str, Any]], created_by: str
) -> RoutingPolicy:
    """Store a new version (the next number); the steps must already compile."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO routing_policies (version, steps, created_by) "
                "SELECT coalesce(max(version), 0) + 1, CAST(:steps AS jsonb), :by "
                "FROM routing_policies RETURNING version"
            ),
            {"steps": orjson.dumps(steps).decode(), "by": created_by},
        )
    ).one()
    return policy_from_documents(row.version, steps)


class PolicyCache(CurrentVersion[RoutingPolicy]):
    """The current policy, re-read at most every `ttl_s`: a new version applies without restart."""

    def __init__(self, engine: AsyncEngine, ttl_s: float) -> None:
        super().__init__(engine, ttl_s, load_policy)
