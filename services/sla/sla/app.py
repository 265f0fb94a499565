"""Builds the SLA service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import create_service_app
from sla.settings import SLASettings


def create_app(settings: SLASettings | None = None) -> FastAPI:
    settings = settings or SLASettings()
    return create_service_app(
        settings,
        title="Contact center — SLA",
        description=(
            "Tracks every service-level deadline of every open ticket and escalates what is "
            "overdue."
        ),
        package="sla",
    )
