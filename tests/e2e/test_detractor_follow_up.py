"""Closing the loop across three services through Kafka: a contact becomes a ticket in the
router, an agent resolves it, feedback surveys the customer, an unhappy answer publishes a
follow-up request, and the router opens a follow-up ticket owned by the first agent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from ccshared.events import new_event
from ccshared.events.payloads import ContactReceived, CustomerHints
from ccshared.kafka import make_producer
from feedback.app import create_app as create_feedback
from feedback.domain.tokens import issue_token
from feedback.settings import FeedbackSettings
from router.app import create_app as create_router
from router.settings import RouterSettings
from tests.conftest import topic
from tests.e2e.conftest import start_group_at_end
from tests.helpers import as_agent, as_supervisor, wait_until

SECRET = "e2e-token-secret"


async def test_unhappy_answer_opens_a_follow_up_ticket_for_the_first_agent(
    fresh_database: str, second_database: str, kafka_bootstrap: str
) -> None:
    suffix = f".e2e-{uuid.uuid4().hex[:8]}"
    for group, catalog in (
        (f"router.contacts{suffix}", "intake.contacts"),
        (f"router.escalations{suffix}", "sla.events"),
        (f"router.sla-deadlines{suffix}", "sla.events"),
        (f"router.follow-ups{suffix}", "feedback.events"),
    ):
        await start_group_at_end(kafka_bootstrap, group, [catalog])
    feedback_name = f"feedback-e2e{uuid.uuid4().hex[:8]}"
    for name, catalog in (
        ("tickets", "router.tickets"),
        ("sla", "sla.events"),
        ("contacts", "intake.contacts"),
    ):
        await start_group_at_end(kafka_bootstrap, f"{feedback_name}.{name}", [catalog])

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
    feedback_app = create_feedback(
        FeedbackSettings(
            service_name=feedback_name,
            database_url=SecretStr(fresh_database),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            outbox_poll_interval_s=0.2,
            token_secret=SecretStr(SECRET),
            survey_delay_phone_s=0,
            scheduler_interval_s=0.1,
        )
    )
    async with (
        router_app.router.lifespan_context(router_app),
        feedback_app.router.lifespan_context(feedback_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=router_app),
            base_url="http://r",
            headers=as_supervisor(),
        ) as r,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=feedback_app),
            base_url="http://f",
            headers=as_supervisor(),
        ) as f,
    ):
        await r.put("/v1/agents/amy", json={"name": "amy", "skills": {"complaints": 4}})
        await r.put("/v1/agents/amy/status", json={"status": "available"})

        customer = uuid.uuid4()
        contact = ContactReceived(
            contact_id=uuid.uuid4(),
            customer_id=customer,
            channel="phone",
            external_id=f"call-{uuid.uuid4()}",
            received_at=datetime.now(UTC),
            text="洗衣机一直漏水，我要投诉！",
            language="zh",
            customer=CustomerHints(phone="+8613800138000"),
        )
        event = new_event(contact, producer="intake")
        producer = make_producer(kafka_bootstrap, "e2e-intake")
        await producer.start()
        try:
            await producer.send_and_wait(
                topic("intake.contacts"),
                event.to_bytes(),
                key=event.key.encode(),
                headers=[("event_type", b"contact.received")],
            )
        finally:
            await producer.stop()

        async def offer() -> dict | None:
            offers = (await r.get("/v1/agents/amy/offers")).json()
            return offers[0] if offers else None

        first_offer = await wait_until(offer, timeout=30)
        ticket_id = first_offer["ticket_id"]
        accepted = await r.post(f"/v1/offers/{first_offer['id']}/accept", headers=as_agent("amy"))
        assert accepted.status_code == 200, accepted.text
        await r.post(f"/v1/tickets/{ticket_id}/reply", json={"agent_id": "amy"})
        resolved = await r.post(
            f"/v1/tickets/{ticket_id}/resolve",
            json={"resolution_code": "repair_booked", "first_contact_resolution": True},
            headers=as_agent("amy"),
        )
        assert resolved.status_code == 200, resolved.text

        async def survey_sent() -> dict | None:
            response = await f.get(f"/v1/tickets/{ticket_id}/survey")
            body = response.json() if response.status_code == 200 else None
            return body if body and body["status"] == "sent" else None

        survey = await wait_until(survey_sent, timeout=30)
        token = issue_token(
            uuid.UUID(survey["survey_id"]),
            datetime.fromisoformat(survey["expires_at"]),
            SECRET.encode(),
        )
        answer = await f.post(
            f"/v1/surveys/{token}",
            json={"csat": 1, "nps": 2, "solved_first_contact": False, "comment": "还是漏水"},
        )
        assert answer.status_code in (200, 201), answer.text

        async def follow_up() -> dict | None:
            page = (await r.get("/v1/tickets", params={"customer_id": str(customer)})).json()
            found = [t for t in page["items"] if t["follow_up_of"] == ticket_id]
            return found[0] if found else None

        ticket = await wait_until(follow_up, timeout=30)
        assert ticket["owner_agent_id"] == "amy"
        assert ticket["category"] == "follow_up"
        assert ticket["queue_id"] == "complaints"
