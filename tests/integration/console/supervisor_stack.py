"""The console with the real router, SLA and feedback apps in the same process (ASGI
transports), each on a scratch database of its own, for the supervisor screens' tests.

State is put in place through each service's own handlers, as its consumers would apply the
events (a contact to the router, a ticket opening to SLA, a resolution to feedback), so a test
controls exactly what each service knows, without waiting on the broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, SecretStr
from sqlalchemy import text

from ccshared.events import new_event
from ccshared.events.payloads import ContactReceived, SlaEscalated, TicketOpened
from ccshared.service import Runtime, runtime_of
from feedback.app import create_app as create_feedback
from feedback.consumers.tickets import ticket_events
from feedback.db.facts import FactChanges
from feedback.settings import FeedbackSettings
from router.app import create_app as create_router
from router.bootstrap import router_parts
from router.consumers.contacts import contacts_to_tickets
from router.handlers.escalations import apply_escalations
from router.settings import RouterSettings
from sla.app import create_app as create_sla
from sla.bootstrap import parts_of as sla_parts
from sla.settings import SLASettings
from tests.conftest import scratch_database
from tests.helpers import as_supervisor, wait_until
from tests.integration.console.conftest import Console

ConsoleFactory = Callable[..., Awaitable[Console]]


@dataclass
class Stack:
    console: Console
    router_app: FastAPI
    sla_app: FastAPI
    feedback_app: FastAPI
    router: httpx.AsyncClient  # as a supervisor, straight to the router's API
    sla: httpx.AsyncClient
    feedback: httpx.AsyncClient
    browsers: list[httpx.AsyncClient] = field(default_factory=list)

    async def signed_in(self, user_id: str, role: str, **kwargs: Any) -> httpx.AsyncClient:
        """A browser of a new console user, signed in (closed when the stack stops)."""
        browser = await self.console.signed_in_client(user_id, role, **kwargs)
        self.browsers.append(browser)
        return browser

    @staticmethod
    def _runtime(app: FastAPI) -> Runtime:
        return runtime_of(app)

    async def contact(self, payload: ContactReceived) -> uuid.UUID:
        """Deliver a contact to the router as its consumer would; the ticket it landed on."""
        runtime = self._runtime(self.router_app)
        handler = contacts_to_tickets(runtime)
        async with runtime.engine.begin() as conn:
            await handler(conn, new_event(payload, producer="test"), payload)
            row = (
                await conn.execute(
                    text("SELECT ticket_id FROM ticket_contacts WHERE contact_id = :c"),
                    {"c": payload.contact_id},
                )
            ).one()
        return uuid.UUID(str(row.ticket_id))

    async def assign(self) -> None:
        """One round of the router's assignment loop (offers to available agents)."""
        await router_parts(self._runtime(self.router_app)).assigner.tick()

    async def escalate(self, escalated: SlaEscalated) -> None:
        """An SLA escalation applied by the router, as its consumer would."""
        runtime = self._runtime(self.router_app)
        async with runtime.engine.begin() as conn:
            await apply_escalations(conn, [(None, escalated)])

    async def sla_event(self, payload: BaseModel) -> None:
        """A ticket event taken by SLA's tracker, as its consumer would."""
        runtime = self._runtime(self.sla_app)
        handle = sla_parts(runtime).tracker.handle
        async with runtime.engine.begin() as conn:
            await handle(conn, new_event(payload, producer="router"), payload)

    async def feedback_event(self, payload: BaseModel, **answer: Any) -> None:
        """A ticket event taken by feedback's ticket consumer, and (`answer`: csat, nps,
        solved_first_contact) the customer's survey answer written on the ticket's facts."""
        runtime = self._runtime(self.feedback_app)
        async with runtime.engine.begin() as conn:
            await ticket_events(runtime)(conn, new_event(payload, producer="router"), payload)
            if answer:
                facts = FactChanges(conn)
                ticket_id = payload.ticket_id  # type: ignore[attr-defined]
                before = await facts.current(ticket_id)
                changes = {"survey_sent": True, "answered": True, **answer}
                await facts.update(ticket_id, changes, before)
                await facts.flush()

    async def opened_in_sla(self, ticket: dict[str, Any], received_at: datetime) -> None:
        """SLA starts the router's ticket's clocks from when the customer wrote."""
        await self.sla_event(
            TicketOpened(
                ticket_id=uuid.UUID(ticket["id"]),
                customer_id=uuid.UUID(ticket["customer_id"]),
                channel=ticket["channel"],
                category=ticket["category"],
                priority=ticket["priority"],
                queue_id=ticket["queue_id"],
                opened_at=datetime.fromisoformat(ticket["opened_at"]),
                received_at=received_at,
            )
        )


def _settings_common(database: str, kafka_bootstrap: str) -> dict[str, Any]:
    return {
        "database_url": SecretStr(database),
        "kafka_bootstrap": kafka_bootstrap,
        "log_json": False,
        "consumer_group_suffix": f".test-{uuid.uuid4().hex[:8]}",
        "consumer_offset_reset": "latest",
    }


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


@asynccontextmanager
async def supervisor_stack(
    console_factory: ConsoleFactory, kafka_bootstrap: str, **console_settings: Any
) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as exits:
        router_db = await exits.enter_async_context(scratch_database())
        sla_db = await exits.enter_async_context(scratch_database())
        feedback_db = await exits.enter_async_context(scratch_database())
        router_app = create_router(
            RouterSettings(
                **_settings_common(router_db, kafka_bootstrap),
                assign_in_background=False,
                policy_cache_s=0,
            )
        )
        sla_app = create_sla(
            SLASettings(
                **_settings_common(sla_db, kafka_bootstrap),
                service_name=f"sla-t{uuid.uuid4().hex[:10]}",
                config_cache_s=0,
                shutdown_grace_s=5,
            )
        )
        feedback_app = create_feedback(
            FeedbackSettings(
                **_settings_common(feedback_db, kafka_bootstrap),
                service_name=f"feedback-t{uuid.uuid4().hex[:10]}",
                token_secret=SecretStr("integration-test-token-secret"),
                public_base_url="http://feedback.test",
            )
        )
        clients = []
        for app, base in ((router_app, "r"), (sla_app, "sla"), (feedback_app, "feedback")):
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            exits.push_async_exit(lifespan.__aexit__)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=f"http://{base}",
                headers=as_supervisor(),
            )
            exits.push_async_callback(client.aclose)
            await wait_until(lambda c=client: _ready(c), timeout=60)  # type: ignore[misc]
            clients.append(client)
        console = await console_factory(
            {
                "router": httpx.ASGITransport(app=router_app),
                "sla": httpx.ASGITransport(app=sla_app),
                "feedback": httpx.ASGITransport(app=feedback_app),
            },
            **console_settings,
        )
        router, sla, feedback = clients
        stack = Stack(console, router_app, sla_app, feedback_app, router, sla, feedback)
        try:
            yield stack
        finally:
            for browser in stack.browsers:
                await browser.aclose()
