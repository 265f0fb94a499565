"""The trained classifier's versions in the router's database (migration 0020): what the
training job stores (`python -m router.classifier.train --database`) and every replica loads,
the promoted version with the latest `promoted_at`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class StoredModel:
    version: str
    sha256: str
    data: bytes


async def promoted_version(conn: AsyncConnection) -> tuple[str, str] | None:
    """(version, SHA-256) of the version in force; None if the job has promoted none yet."""
    row = (
        await conn.execute(
            text(
                "SELECT version, sha256 FROM classifier_models WHERE promoted_at IS NOT NULL "
                "ORDER BY promoted_at DESC, number DESC LIMIT 1"
            )
        )
    ).first()
    return (row.version, row.sha256) if row is not None else None


async def stored_model(conn: AsyncConnection, version: str) -> StoredModel | None:
    row = (
        await conn.execute(
            text("SELECT version, sha256, model FROM classifier_models WHERE version = :v"),
            {"v": version},
        )
    ).first()
    return StoredModel(row.version, row.sha256, bytes(row.model)) if row is not None else None


async def next_number(conn: AsyncConnection, after: int) -> int:
    """The next version's number, after every stored one and after `after` (the shipped
    versions'); the table stays locked against another writer until the transaction ends,
    so the number is still free when `add_model` stores it."""
    await conn.execute(text("LOCK TABLE classifier_models IN SHARE ROW EXCLUSIVE MODE"))
    n = (
        await conn.execute(text("SELECT coalesce(max(number), 0) FROM classifier_models"))
    ).scalar_one()
    return max(int(n), after) + 1


async def add_model(
    conn: AsyncConnection,
    number: int,
    data: bytes,
    sha256: str,
    metadata: dict[str, Any],
    *,
    promote: bool,
) -> str:
    """Store version `v<number>` (its file's header names it so); promoted at once if
    `promote`. Its name."""
    version = f"v{number}"
    await conn.execute(
        text(
            "INSERT INTO classifier_models (number, version, model, sha256, metadata, "
            "promoted_at) VALUES (:number, :version, :model, :sha256, CAST(:metadata AS jsonb), "
            "CASE WHEN :promote THEN now() END)"
        ),
        {
            "number": number,
            "version": version,
            "model": data,
            "sha256": sha256,
            "metadata": orjson.dumps(metadata).decode(),
            "promote": promote,
        },
    )
    return version


async def model_versions(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every stored version, oldest first: name, SHA-256, when made and promoted, metadata."""
    rows = await conn.execute(
        text(
            "SELECT version, sha256, created_at, promoted_at, metadata "
            "FROM classifier_models ORDER BY number"
        )
    )
    return [dict(r._mapping) for r in rows]
