"""Builds the SLA service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import ConsumerSpec, Runtime, create_service_app
from sla import bootstrap
from sla.api.calendars import router as calendars_router
from sla.api.endpoints import router as sla_router
from sla.api.policies import router as policies_router
from sla.consumers.segments import CUSTOMER_SEGMENTS
from sla.consumers.tickets import TICKET_CLOCKS
from sla.settings import SLASettings


def consumers(settings: SLASettings) -> list[ConsumerSpec]:
    """The service's consumer groups (the benchmarks' harness reads them too)."""
    return [TICKET_CLOCKS, CUSTOMER_SEGMENTS]


def create_app(settings: SLASettings | None = None) -> FastAPI:
    settings = settings or SLASettings()

    async def on_start(runtime: Runtime) -> None:
        await bootstrap.start(runtime, settings)

    async def on_stop(runtime: Runtime) -> None:
        await bootstrap.stop(runtime, settings)

    return create_service_app(
        settings,
        title="Contact center — SLA",
        description=(
            "Tracks every service-level deadline of every open ticket and escalates what is "
            "overdue: SLA policies (versioned), business calendars, each ticket's deadlines and "
            "timeline, the at-risk list and attainment. Warnings, breaches, escalations and "
            "met targets are published on `sla.events`."
        ),
        package="sla",
        routers=[sla_router, policies_router, calendars_router],
        consumers=consumers(settings),
        on_start=on_start,
        on_stop=on_stop,
    )
