"""The SLA service running in-process against the real stack, with its own database.

Each test gets its own consumer group (a unique service name), positioned at the end of
router.tickets before the service first starts, so it reads only the events the test
publishes, and other runs of the suite on the same broker do not take its partitions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, SecretStr

from ccshared.db import asyncpg_dsn
from ccshared.events import Envelope, new_event
from ccshared.kafka import commit_group_at_end, ensure_topics, make_producer
from sla.app import create_app
from sla.settings import SLASettings
from tests.conftest import TOPIC_PREFIX, topic
from tests.helpers import as_supervisor, wait_until
from tests.integration.intake.conftest import TopicTail

TICKETS = "router.tickets"
# Other suites publish to router.tickets too: the test policies match only this category.
CATEGORY = "sla-integration-test"
SLA_EVENTS = "sla.events"


def fast_policy(policy_id: str = "fast", **overrides: Any) -> dict[str, Any]:
    """Second-scale targets on the 24x7 calendar: first response warns at 0.5 s, breaches at
    1 s, escalates 0.3 s and 0.6 s later; resolution is an hour away. Only tickets of
    CATEGORY match it."""
    return {
        "id": policy_id,
        "name": "Fast test policy",
        "rank": 1,
        "conditions": {"category": [CATEGORY]},
        "targets": {"first_response": 1.0, "resolution": 3600},
        "warn_at_share": 0.5,
        "calendar_id": "24x7",
        "escalation": [
            {"level": 1, "offset": 0.3, "actions": ["notify_supervisor", "raise_priority"]},
            {
                "level": 2,
                "offset": 0.6,
                "actions": ["move_to_escalation_queue", "notify_manager", "raise_priority"],
                "raise_priority_to": "urgent",
            },
        ],
        **overrides,
    }


@dataclass
class Sla:
    app: FastAPI
    client: httpx.AsyncClient
    db: asyncpg.Pool
    lifespan: Any

    async def count(self, sql: str, *args: Any) -> int:
        return int(await self.db.fetchval(sql, *args))

    async def tracked(self, ticket_id: uuid.UUID) -> bool:
        return (await self.client.get(f"/v1/tickets/{ticket_id}/sla")).status_code == 200

    async def stop(self) -> None:
        await self.client.aclose()
        await self.db.close()
        await self.lifespan.__aexit__(None, None, None)


@dataclass
class Router:
    """Publishes ticket events as the router would (keyed by ticket id)."""

    bootstrap: str
    sent: list[Envelope] = field(default_factory=list)

    async def publish(self, *items: BaseModel | Envelope) -> list[Envelope]:
        envelopes = [
            i if isinstance(i, Envelope) else new_event(i, producer="router") for i in items
        ]
        producer = make_producer(self.bootstrap, "fake-router")
        await producer.start()
        try:
            for e in envelopes:
                await producer.send_and_wait(
                    topic(TICKETS),
                    e.to_bytes(),
                    key=e.key.encode(),
                    headers=[("event_type", e.event_type.encode())],
                )
        finally:
            await producer.stop()
        self.sent += envelopes
        return envelopes


class SlaFactory:
    """Starts SLA instances on the test's database and consumer group; stops what it started."""

    def __init__(self, database_url: str, bootstrap: str, service_name: str) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.service_name = service_name
        self.running: list[Sla] = []

    async def start(self, **overrides: Any) -> Sla:
        settings = SLASettings(
            service_name=self.service_name,
            database_url=SecretStr(self.database_url),
            kafka_bootstrap=self.bootstrap,
            log_json=False,
            outbox_poll_interval_s=0.2,
            timer_poll_interval_s=0.05,
            config_cache_s=0,
            shutdown_grace_s=5,
            **overrides,
        )
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sla", headers=as_supervisor()
        )
        await wait_until(lambda: _ready(client), timeout=60)
        db = await asyncpg.create_pool(asyncpg_dsn(self.database_url), min_size=1, max_size=3)
        sla = Sla(app, client, db, lifespan)
        self.running.append(sla)
        return sla

    async def stop(self, sla: Sla) -> None:
        self.running.remove(sla)
        await sla.stop()


@pytest.fixture
async def sla_factory(fresh_database: str, kafka_bootstrap: str) -> AsyncIterator[SlaFactory]:
    service_name = f"sla-t{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
    await commit_group_at_end(kafka_bootstrap, f"{service_name}.ticket-clocks", [topic(TICKETS)])
    factory = SlaFactory(fresh_database, kafka_bootstrap, service_name)
    yield factory
    for sla in reversed(factory.running):
        await sla.stop()


@pytest.fixture
async def sla(sla_factory: SlaFactory) -> Sla:
    return await sla_factory.start()


@pytest.fixture
def router(kafka_bootstrap: str) -> Router:
    return Router(kafka_bootstrap)


@pytest.fixture
async def sla_events(kafka_bootstrap: str) -> AsyncIterator[SlaEvents]:
    async with TopicTail(kafka_bootstrap, topic(SLA_EVENTS)) as tail:
        yield SlaEvents(tail)


class SlaEvents:
    """sla.events as the test reads them: decoded, per ticket."""

    def __init__(self, tail: TopicTail) -> None:
        self.tail = tail

    def of(self, ticket_id: uuid.UUID, with_deadlines: bool = False) -> list[dict[str, Any]]:
        """The ticket's events; `sla.deadline_changed` only `with_deadlines`."""
        found = []
        for record in self.tail.records:
            event = orjson.loads(record.value)
            if event["event_type"] == "sla.deadline_changed" and not with_deadlines:
                continue
            if event["payload"]["ticket_id"] == str(ticket_id):
                assert record.key == str(ticket_id).encode()  # keyed by ticket
                found.append({"type": event["event_type"], **event["payload"]})
        return found

    async def wait_for(
        self,
        ticket_id: uuid.UUID,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30,
        with_deadlines: bool = False,
    ) -> list[dict[str, Any]]:
        def holds(_: Any) -> bool:
            return predicate(self.of(ticket_id, with_deadlines))

        await self.tail.wait_for(holds, timeout=timeout)
        return self.of(ticket_id, with_deadlines)


def kinds(events: list[dict[str, Any]], metric: str | None = None) -> list[str]:
    """`sla.warning`, `sla.breached`, `sla.escalated:1`, ... in the order published
    (`sla.deadline_changed` left out: see `deadlines`)."""
    return [
        e["type"] + (f":{e['level']}" if e["type"] == "sla.escalated" else "")
        for e in events
        if e["type"] != "sla.deadline_changed" and (metric is None or e["metric"] == metric)
    ]


def deadlines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `sla.deadline_changed` events among `events`, in the order published."""
    return [e for e in events if e["type"] == "sla.deadline_changed"]


def now() -> datetime:
    return datetime.now(UTC)


def ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
