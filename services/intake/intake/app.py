"""Builds the intake service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import ConsumerSpec, Runtime, create_service_app
from intake import bootstrap
from intake.api.endpoints import document_contact_schema, router
from intake.api.fast import IntakeApp
from intake.api.outbound import router as outbound_router
from intake.consumers.customers import CUSTOMER_MERGES
from intake.consumers.outbound import OUTBOUND_MESSAGES
from intake.consumers.tickets import TICKET_LINKS
from intake.settings import IntakeSettings


def consumers(settings: IntakeSettings) -> list[ConsumerSpec]:
    """The service's consumer groups (the benchmarks' harness reads them too)."""
    return [TICKET_LINKS, CUSTOMER_MERGES, OUTBOUND_MESSAGES]


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    async def on_start(runtime: Runtime) -> None:
        await bootstrap.start(runtime, settings)

    async def on_stop(runtime: Runtime) -> None:
        await bootstrap.stop(runtime)

    app = create_service_app(
        settings,
        title="Contact center — Intake",
        description=(
            "The REST API that channel integrations (telephony, e-mail gateways, chat widgets, "
            "social connectors) post customer contacts to. Authenticate with the integration's "
            "API key (`Authorization: Bearer cck_...`); create keys with "
            "`python -m intake.cli keys create`."
        ),
        package="intake",
        routers=[router, outbound_router],
        consumers=consumers(settings),
        max_body_bytes=settings.max_body_bytes,
        on_start=on_start,
        on_stop=on_stop,
        app_class=IntakeApp,
    )
    document_contact_schema(app)
    return app
