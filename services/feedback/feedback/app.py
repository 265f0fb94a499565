"""Builds the Feedback service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import ConsumerSpec, Runtime, create_service_app
from feedback import bootstrap
from feedback.api.key_accounts import router as key_accounts_router
from feedback.api.kpis import router as kpis_router
from feedback.api.pages import SurveyPageHeaders
from feedback.api.surveys import router as surveys_router
from feedback.api.webhooks import router as webhooks_router
from feedback.consumers.contacts import contacts_consumer
from feedback.consumers.customers import customers_consumer
from feedback.consumers.sla import sla_consumer
from feedback.consumers.tickets import tickets_consumer
from feedback.settings import FeedbackSettings


def consumers(settings: FeedbackSettings) -> list[ConsumerSpec]:
    """The service's consumer groups (the benchmarks' harness reads them too)."""
    return [
        tickets_consumer(settings),
        sla_consumer(settings),
        contacts_consumer(settings),
        customers_consumer(settings),
    ]


def create_app(settings: FeedbackSettings | None = None) -> FastAPI:
    settings = settings or FeedbackSettings()

    async def on_start(runtime: Runtime) -> None:
        await bootstrap.start(runtime, settings)

    async def on_stop(runtime: Runtime) -> None:
        await bootstrap.stop(runtime, settings)

    app = create_service_app(
        settings,
        title="Contact center — Feedback",
        description=(
            "Surveys customers after resolution (signed, expiring links; webhooks to the "
            "channel's integrations), closes the loop on unhappy answers and key-account "
            "call-backs, and reports the KPIs supervisors run on."
        ),
        package="feedback",
        routers=[surveys_router, webhooks_router, key_accounts_router, kpis_router],
        consumers=consumers(settings),
        on_start=on_start,
        on_stop=on_stop,
    )
    app.add_middleware(SurveyPageHeaders)
    return app
