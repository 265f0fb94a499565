"""Policies and calendars: their tables, the defaults seeded at start-up, and the in-process
copy the consumer matches tickets against.

Policy versions never change once written (only the per-policy `active` flag does) and there
are few of them, so each process keeps all of them in memory and re-reads the two small tables
when its copy is older than `ttl_s` or when this process changed them (the API invalidates).
Another replica's change is therefore seen within `ttl_s`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sla.domain.calendar import DEFAULT_CALENDARS, BusinessCalendar
from sla.domain.definitions import calendar_doc, calendar_from_row, policy_doc, policy_from_row
from sla.domain.policy import DEFAULT_POLICIES, SlaPolicy, latest_versions

_SEED_CALENDAR = text(
    "INSERT INTO sla_calendars (id, body) VALUES (:id, CAST(:body AS jsonb)) "
    "ON CONFLICT (id) DO NOTHING"
)
_SEED_POLICY = text(
    "INSERT INTO sla_policies (id, version, body) VALUES (:id, :version, CAST(:body AS jsonb)) "
    "ON CONFLICT (id, version) DO NOTHING"
)
_POLICIES = text("SELECT id, version, body, active FROM sla_policies")
_CALENDARS = text("SELECT id, body FROM sla_calendars")


def dump(model: Any) -> str:
    return orjson.dumps(model.model_dump(mode="json")).decode()


async def seed_defaults(conn: AsyncConnection) -> None:
    """Default calendars always exist; default policies only in a fresh installation."""
    for calendar in DEFAULT_CALENDARS.values():
        await conn.execute(
            _SEED_CALENDAR, {"id": calendar.id, "body": dump(calendar_doc(calendar))}
        )
    # Only into an empty table: an installation that changed the defaults keeps its own.
    empty = (await conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM sla_policies)"))).scalar()
    if empty:
        await conn.execute(
            _SEED_POLICY,
            [
                {"id": p.id, "version": p.version, "body": dump(policy_doc(p))}
                for p in DEFAULT_POLICIES
            ],
        )


@dataclass
class SlaConfig:
    """What is configured at one moment: every policy version and every calendar."""

    policies: dict[tuple[str, int], SlaPolicy] = field(default_factory=dict)
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)

    def latest_policies(self) -> list[SlaPolicy]:
        return latest_versions(self.policies.values())

    def policy(self, policy_id: str | None, version: int | None) -> SlaPolicy | None:
        if policy_id is None or version is None:
            return None
        return self.policies.get((policy_id, version))

    def calendar(self, calendar_id: str) -> BusinessCalendar:
        found = self.calendars.get(calendar_id)
        if found is None:
            # A policy names a calendar that was deleted by hand: count on 24x7 rather than
            # stop tracking the ticket.
            return DEFAULT_CALENDARS["24x7"]
        return found


class ConfigCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._config: SlaConfig | None = None
        self._loaded_at = 0.0
        self._calendar_bodies: dict[str, bytes] = {}

    def invalidate(self) -> None:
        self._config = None

    async def get(self, conn: AsyncConnection) -> SlaConfig:
        if self._config is None or time.monotonic() - self._loaded_at > self.ttl_s:
            self._config = await self._load(conn)
            self._loaded_at = time.monotonic()
        return self._config

    async def _load(self, conn: AsyncConnection) -> SlaConfig:
        config = SlaConfig()
        for row in await conn.execute(_POLICIES):
            config.policies[(row.id, row.version)] = policy_from_row(
                row.id, row.version, row.body, row.active
            )
        previous = self._config.calendars if self._config is not None else {}
        bodies: dict[str, bytes] = {}
        for row in await conn.execute(_CALENDARS):
            raw = orjson.dumps(row.body, option=orjson.OPT_SORT_KEYS)
            bodies[row.id] = raw
            same = self._calendar_bodies.get(row.id) == raw and row.id in previous
            # Keep the unchanged calendar object: it carries the cache of its working days.
            config.calendars[row.id] = (
                previous[row.id] if same else calendar_from_row(row.id, row.body)
            )
        self._calendar_bodies = bodies
        return config
