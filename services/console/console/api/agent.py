"""The agent screens (being built: issue 19)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
