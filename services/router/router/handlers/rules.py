"""The classification rules: reading the ones in force, replacing them with a new version
(checked first) for tickets opened from then on."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.problems import FieldError, Problem
from router.db.rules import RulesCache, RuleSet, load_rules, save_rules
from router.domain.classification import InvalidRule, rules_from_documents


async def current_rules(engine: AsyncEngine) -> RuleSet:
    async with engine.connect() as conn:
        return await load_rules(conn)


async def replace_rules(
    engine: AsyncEngine, cache: RulesCache, documents: list[dict[str, Any]], actor: str
) -> RuleSet:
    try:
        rules_from_documents(documents)
    except InvalidRule as exc:
        raise Problem(
            f"Rule {documents[exc.index]['id']} is invalid: {exc.message}",
            status=422,
            slug="validation-error",
            errors=[
                FieldError(
                    field=f"body.rules.{exc.index}.{exc.field}",
                    message=exc.message,
                    type="invalid_rule",
                )
            ],
        ) from None
    async with engine.begin() as conn:
        saved = await save_rules(conn, documents, actor)
    cache.invalidate()
    return saved
