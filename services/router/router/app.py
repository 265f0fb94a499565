"""Builds the router service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import Runtime, create_service_app
from router.api.endpoints import router
from router.assigner import Assigner
from router.consumers.events import CONTACTS, ESCALATIONS, FOLLOW_UPS
from router.db.policies import PolicyCache, ensure_default_policy
from router.db.rules import RulesCache, ensure_default_rules
from router.settings import RouterSettings


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()

    async def on_start(runtime: Runtime) -> None:
        async with runtime.engine.begin() as conn:
            await ensure_default_policy(conn)
            await ensure_default_rules(conn)
        policies = PolicyCache(runtime.engine, settings.policy_cache_s)
        rules = RulesCache(runtime.engine, settings.policy_cache_s)
        assigner = Assigner(runtime.engine, policies, interval_s=settings.assign_interval_s)
        if settings.assign_in_background:
            assigner.start()
        runtime.extras.update(policies=policies, rules=rules, assigner=assigner)

    async def on_stop(runtime: Runtime) -> None:
        await runtime.extras["assigner"].stop()

    return create_service_app(
        settings,
        title="Contact center — Router",
        description=(
            "Turns contacts into tickets, routes them to role-based queues and agents; the "
            "queue, agent and ticket API of the contact-center UI. Every assignment records "
            "why this agent: the policy step, the candidates with their scores and why each "
            "was passed over."
        ),
        package="router",
        routers=[router],
        consumers=[CONTACTS, ESCALATIONS, FOLLOW_UPS],
        on_start=on_start,
        on_stop=on_stop,
    )
