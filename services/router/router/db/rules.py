"""Classification rules as stored (versioned rule lists) and the in-process cache of the
current version."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from router.db.current import CurrentVersion
from router.domain.classification import (
    DEFAULT_RULES,
    ClassificationRule,
    TextModel,
    rule_document,
    rules_from_documents,
)


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[ClassificationRule, ...]
    created_by: str = "system"
    model: TextModel | None = None  # the trained classifier beside them (bootstrap's)


DEFAULT_RULE_SET = RuleSet(1, DEFAULT_RULES)


async def ensure_default_rules(conn: AsyncConnection) -> None:
    await conn.execute(
        text(
            "INSERT INTO classification_rules (version, rules, created_by) "
            "VALUES (1, CAST(:rules AS jsonb), 'system') ON CONFLICT DO NOTHING"
        ),
        {"rules": orjson.dumps([rule_document(r) for r in DEFAULT_RULES]).decode()},
    )


async def load_rules(conn: AsyncConnection) -> RuleSet:
    row = (
        await conn.execute(
            text(
                "SELECT version, rules, created_by FROM classification_rules "
                "ORDER BY version DESC LIMIT 1"
            )
        )
    ).first()
    if row is None:
        return DEFAULT_RULE_SET
    documents = row.rules if isinstance(row.rules, list) else orjson.loads(row.rules)
    return RuleSet(row.version, rules_from_documents(documents), row.created_by)


async def save_rules(
    conn: AsyncConnection, documents: Sequence[dict[str, Any]], created_by: str
) -> RuleSet:
    """Store a new version (the next number); the documents must already compile."""
    rules = rules_from_documents(documents)
    row = (
        await conn.execute(
            text(
                "INSERT INTO classification_rules (version, rules, created_by) "
                "SELECT coalesce(max(version), 0) + 1, CAST(:rules AS jsonb), :by "
                "FROM classification_rules RETURNING version"
            ),
            {"rules": orjson.dumps(list(documents)).decode(), "by": created_by},
        )
    ).one()
    return RuleSet(row.version, rules, created_by)


class RulesCache(CurrentVersion[RuleSet]):
    """The current rules, re-read at most every `ttl_s`: a new version applies without restart."""

    def __init__(
        self,
        engine: AsyncEngine,
        ttl_s: float,
        model: Callable[[AsyncConnection], Awaitable[TextModel | None]] | None = None,
    ) -> None:
        """`model`: the classifier in force, asked at every refresh on the same connection
        (bootstrap's `ModelSource.current_in`: the database's promoted version, else the
        directory's or the shipped one)."""

        async def load(conn: AsyncConnection) -> RuleSet:
            rules = await load_rules(conn)
            if model is None:
                return rules
            return dataclasses.replace(rules, model=await model(conn))

        super().__init__(engine, ttl_s, load)
