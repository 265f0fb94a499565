"""Canned response rows: per queue and language, created, changed and removed by
supervisors; an agent lists those of the queues they serve."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_FIELDS = "id, queue_id, language, title, body, created_by, created_at, updated_at"


async def list_canned(
    conn: AsyncConnection,
    *,
    queue_id: str | None,
    language: str | None,
    agent_id: str | None,
) -> list[dict[str, Any]]:
    """By queue, language and title; `agent_id`: only the queues the agent serves (their
    skills cover the queue's required skills, as the assigner decides)."""
    where, params = ["true"], {}
    if queue_id:
        where.append("c.queue_id = :q")
        params["q"] = queue_id
    if language:
        where.append("c.language = :l")
        params["l"] = language
    if agent_id is not None:
        where.append(
            "c.queue_id IN (SELECT q.id FROM queues q "
            "JOIN agents a ON a.id = :a AND a.skills ?& q.required_skills)"
        )
        params["a"] = agent_id
    rows = await conn.execute(
        text(
            f"SELECT {', '.join('c.' + f for f in _FIELDS.split(', '))} FROM canned_responses c "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY c.queue_id, c.language, c.title, c.id"
        ),
        params,
    )
    return [dict(r._mapping) for r in rows]


async def get_canned(conn: AsyncConnection, canned_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            text(f"SELECT {_FIELDS} FROM canned_responses WHERE id = :id"),  # noqa: S608
            {"id": canned_id},
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def agent_serves(conn: AsyncConnection, agent_id: str, queue_id: str) -> bool:
    found = await conn.execute(
        text(
            "SELECT 1 FROM queues q JOIN agents a ON a.id = :a AND a.skills ?& q.required_skills "
            "WHERE q.id = :q"
        ),
        {"a": agent_id, "q": queue_id},
    )
    return found.first() is not None


async def insert_canned(
    conn: AsyncConnection,
    canned_id: uuid.UUID,
    *,
    queue_id: str,
    language: str,
    title: str,
    body: str,
    created_by: str,
) -> dict[str, Any]:
    row = (
        await conn.execute(
            text(
                "INSERT INTO canned_responses (id, queue_id, language, title, body, created_by) "  # noqa: S608
                f"VALUES (:id, :q, :l, :title, :body, :by) RETURNING {_FIELDS}"
            ),
            {
                "id": canned_id,
                "q": queue_id,
                "l": language,
                "title": title,
                "body": body,
                "by": created_by,
            },
        )
    ).one()
    return dict(row._mapping)


async def update_canned(
    conn: AsyncConnection,
    canned_id: uuid.UUID,
    *,
    queue_id: str,
    language: str,
    title: str,
    body: str,
) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            text(
                "UPDATE canned_responses SET queue_id = :q, language = :l, title = :title, "  # noqa: S608
                f"body = :body, updated_at = now() WHERE id = :id RETURNING {_FIELDS}"
            ),
            {"id": canned_id, "q": queue_id, "l": language, "title": title, "body": body},
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def delete_canned(conn: AsyncConnection, canned_id: uuid.UUID) -> bool:
    found = await conn.execute(
        text("DELETE FROM canned_responses WHERE id = :id RETURNING id"), {"id": canned_id}
    )
    return found.first() is not None
