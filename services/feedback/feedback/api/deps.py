"""What endpoints reach on the running service."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.service import runtime_of
from feedback.settings import FeedbackSettings


def engine_of(request: Request) -> AsyncEngine:
    return runtime_of(request.app).engine


def settings_of(request: Request) -> FeedbackSettings:
    settings = runtime_of(request.app).settings
    if not isinstance(settings, FeedbackSettings):
        raise TypeError("not the feedback service's settings")
    return settings


def wants(request: Request, media_type: str) -> bool:
    """Whether the Accept header asks for media_type before (or instead of) HTML."""
    accept = request.headers.get("accept", "").lower()
    return media_type in accept and (
        "text/html" not in accept or accept.index(media_type) < accept.index("text/html")
    )
