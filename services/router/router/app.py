"""Builds the router service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import Runtime, create_service_app
from router import bootstrap
from router.api import ROUTERS
from router.consumers import CONSUMERS
from router.settings import RouterSettings


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()

    async def on_start(runtime: Runtime) -> None:
        await bootstrap.start(runtime, settings)

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
        routers=ROUTERS,
        consumers=CONSUMERS,
        on_start=on_start,
        on_stop=bootstrap.stop,
    )
