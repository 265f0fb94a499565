"""Builds the intake service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import create_service_app
from intake.settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    return create_service_app(
        settings,
        title="Contact center — Intake",
        description="The REST API that channel integrations post customer contacts to.",
        package="intake",
    )
