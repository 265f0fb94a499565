"""What endpoints reach on the running SLA service, typed."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.service import runtime_of
from sla.bootstrap import parts_of
from sla.db.config import ConfigCache
from sla.db.tracking import TicketTracker


def engine_of(request: Request) -> AsyncEngine:
    return runtime_of(request.app).engine


def configs(request: Request) -> ConfigCache:
    return parts_of(runtime_of(request.app)).configs


def tracker(request: Request) -> TicketTracker:
    return parts_of(runtime_of(request.app)).tracker
