"""The router running in-process against the real stack, with its own database.

Contacts reach it through its own consumer handler (the Kafka path is covered by the e2e test
and by the shared consumer's tests), so each test controls exactly what arrives when.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from ccshared.events import new_event
from ccshared.events.payloads import ContactReceived, CustomerHints, ThreadRefs
from ccshared.service import Runtime, runtime_of
from router.app import create_app
from router.bootstrap import router_parts
from router.consumers.contacts import contacts_to_tickets
from router.settings import RouterSettings
from router.tasks.assignment import Assigner
from tests.helpers import as_supervisor, wait_until


def contact(
    customer: uuid.UUID,
    *,
    channel: str = "chat",
    text_: str = "你好，请问会员积分怎么兑换？",
    subject: str | None = None,
    thread: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    account_id: str | None = None,
    at: datetime | None = None,
) -> ContactReceived:
    contact_id = uuid.uuid4()
    return ContactReceived(
        contact_id=contact_id,
        customer_id=customer,
        channel=channel,  # type: ignore[arg-type]
        external_id=f"ext-{contact_id}",
        received_at=at or datetime.now(UTC),
        subject=subject,
        text=text_,
        customer=CustomerHints(account_id=account_id),
        thread=ThreadRefs(**(thread or {})),
        metadata=metadata or {},
    )


@dataclass
class Router:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.app)

    @property
    def assigner(self) -> Assigner:
        return router_parts(self.runtime).assigner

    async def receive(self, payload: ContactReceived) -> uuid.UUID:
        """Deliver a contact as the consumer would; returns the ticket it landed on."""
        handler = contacts_to_tickets(self.runtime)
        async with self.runtime.engine.begin() as conn:
            await handler(conn, new_event(payload, producer="test"), payload)
            row = (
                await conn.execute(
                    text("SELECT ticket_id FROM ticket_contacts WHERE contact_id = :c"),
                    {"c": payload.contact_id},
                )
            ).one()
        return uuid.UUID(str(row.ticket_id))

    async def ticket(self, ticket_id: uuid.UUID) -> dict[str, Any]:
        response = await self.client.get(f"/v1/tickets/{ticket_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def agent(
        self,
        agent_id: str,
        *,
        skills: dict[str, int] | None = None,
        capacity: dict[str, int] | None = None,
        status: str = "available",
    ) -> None:
        body: dict[str, Any] = {"name": agent_id, "skills": skills or {}}
        if capacity is not None:
            body["capacity"] = capacity
        assert (await self.client.put(f"/v1/agents/{agent_id}", json=body)).status_code == 200
        response = await self.client.put(f"/v1/agents/{agent_id}/status", json={"status": status})
        assert response.status_code == 200, response.text

    async def offers(self, agent_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/v1/agents/{agent_id}/offers")
        assert response.status_code == 200
        offers: list[dict[str, Any]] = response.json()
        return offers

    async def sql(self, query: str, **params: Any) -> list[Any]:
        async with self.runtime.engine.begin() as conn:
            result = await conn.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []


@pytest.fixture
async def router_factory(
    fresh_database: str, kafka_bootstrap: str
) -> AsyncIterator[Callable[..., Awaitable[Router]]]:
    started: list[tuple[Any, httpx.AsyncClient]] = []

    async def start(**overrides: Any) -> Router:
        settings = RouterSettings(
            database_url=SecretStr(fresh_database),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            consumer_group_suffix=f".test-{uuid.uuid4().hex[:8]}",
            consumer_offset_reset="latest",
            assign_in_background=overrides.pop("assign_in_background", False),
            policy_cache_s=0,
            **overrides,
        )
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r", headers=as_supervisor()
        )
        started.append((lifespan, client))
        return Router(app, client)

    yield start
    for lifespan, client in reversed(started):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def router(router_factory: Callable[..., Awaitable[Router]]) -> Router:
    return await router_factory()


async def eventually(predicate: Callable[[], Awaitable[Any]], timeout: float = 10) -> Any:
    return await wait_until(predicate, timeout=timeout)
