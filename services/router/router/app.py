"""Builds the Router service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import create_service_app
from router.settings import RouterSettings


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()
    return create_service_app(
        settings,
        title="Contact center — Router",
        description=(
            "Turns contacts into tickets, routes them to role-based queues and agents; the "
            "queue, agent and ticket API of the contact-center UI."
        ),
        package="router",
    )
