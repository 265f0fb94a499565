"""Builds the Feedback service's app; nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI

from ccshared.service import create_service_app
from feedback.settings import FeedbackSettings


def create_app(settings: FeedbackSettings | None = None) -> FastAPI:
    settings = settings or FeedbackSettings()
    return create_service_app(
        settings,
        title="Contact center — Feedback",
        description=(
            "Surveys customers after resolution, closes the loop on unhappy answers and "
            "reports the KPIs."
        ),
        package="feedback",
    )
