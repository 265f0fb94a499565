"""A contact posted to intake travels through Kafka to the router, becomes a ticket, is offered
to an agent, and intake learns which ticket it became."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from pydantic import SecretStr

from intake.app import create_app as create_intake
from intake.db.api_keys import create_key
from intake.settings import IntakeSettings
from router.app import create_app as create_router
from router.settings import RouterSettings
from tests.e2e.conftest import start_group_at_end
from tests.helpers import as_supervisor, wait_until

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "contacts.jsonl"


async def test_posted_contacts_become_tickets_offered_to_agents(
    fresh_database: str, second_database: str, kafka_bootstrap: str
) -> None:
    suffix = f".e2e-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(kafka_bootstrap, f"router.contacts{suffix}", ["intake.contacts"])
    await start_group_at_end(kafka_bootstrap, f"intake.ticket-links{suffix}", ["router.tickets"])
    intake_app = create_intake(
        IntakeSettings(
            database_url=SecretStr(fresh_database),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            consumer_group_suffix=suffix,
            outbox_poll_interval_s=0.2,
        )
    )
    router_app = create_router(
        RouterSettings(
            database_url=SecretStr(second_database),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            consumer_group_suffix=suffix,
            assign_interval_s=0.2,
            outbox_poll_interval_s=0.2,
        )
    )
    async with (
        intake_app.router.lifespan_context(intake_app),
        router_app.router.lifespan_context(router_app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=intake_app), base_url="http://i") as i,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=router_app),
            base_url="http://r",
            headers=as_supervisor(),
        ) as r,
    ):
        for name, skills in (
            ("amy", {"complaints": 3, "billing": 3, "technical": 3, "vip": 3}),
            ("bob", {}),
        ):
            await r.put(f"/v1/agents/{name}", json={"name": name, "skills": skills})
            await r.put(f"/v1/agents/{name}/status", json={"status": "available"})
        _, key = await create_key(
            intake_app.state.runtime.parts.pool,
            name="e2e",
            channels=["phone", "email", "chat", "social"],
            rate_per_s=1000,
            burst=1000,
        )
        auth = {"Authorization": f"Bearer {key}"}
        samples = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
        accepted = []
        for sample in samples:
            response = await i.post("/v1/contacts", json=sample, headers=auth)
            assert response.status_code == 202, response.text
            accepted.append(response.json())

        customers = {a["customer_id"] for a in accepted}

        async def all_ticketed() -> list[dict] | None:
            page = (await r.get("/v1/tickets", params={"limit": 100})).json()["items"]
            mine = [t for t in page if t["customer_id"] in customers]
            contacts = 0
            for t in mine:
                contacts += len((await r.get(f"/v1/tickets/{t['id']}")).json()["contacts"])
            return mine if contacts == len(accepted) else None

        tickets = await wait_until(all_ticketed, timeout=60)
        # Maria's two e-mails and Li Wei's two chat messages thread onto one ticket each.
        assert len(tickets) == len(accepted) - 2
        queues = {t["queue_id"] for t in tickets}
        # VIP care is for the key-account registry's customers (feedback's, by event: see
        # tests/integration/router/test_key_accounts_across_services.py), never for a
        # sample's own `account_id` claim.
        assert "complaints" in queues
        assert "vip" not in queues

        async def offered() -> bool:
            offers = (await r.get("/v1/agents/amy/offers")).json()
            offers += (await r.get("/v1/agents/bob/offers")).json()
            return len(offers) >= 2

        await wait_until(offered, timeout=30)

        async def linked() -> bool:
            body = (await i.get(f"/v1/contacts/{accepted[0]['id']}", headers=auth)).json()
            return body["ticket_id"] is not None

        await wait_until(linked, timeout=30)
