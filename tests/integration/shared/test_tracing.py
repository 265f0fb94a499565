"""One contact is one trace: intake's POST, and the spans of every service that takes the
events it causes (router, SLA, feedback, and intake again for the ticket link), joined through
the `traceparent` each event carries from its outbox row to its consumer; the assignment
round's offers and an offer's time-out (continuing the trace the ticket keeps); and later, the
agent's resolution (continuing the trace the ticket keeps, linked to the agent's request) and
the survey feedback's scheduler sends for it (continuing the trace the survey row keeps)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from sqlalchemy import text

from ccshared import tracing
from feedback.app import create_app as create_feedback
from feedback.settings import FeedbackSettings
from intake.app import create_app as create_intake
from intake.db.api_keys import create_key
from intake.settings import IntakeSettings
from router.app import create_app as create_router
from router.settings import RouterSettings
from sla.app import create_app as create_sla
from sla.settings import SLASettings
from tests.conftest import scratch_database
from tests.e2e.conftest import start_group_at_end
from tests.helpers import as_agent, as_supervisor, wait_until

CONTACT: dict[str, Any] = {
    "channel": "phone",
    "external_id": "",  # set per run
    "received_at": "",  # set per run: now, so its SLA deadlines are still ahead
    "text": "My washing machine is leaking, I want to complain.",
    "language": "en",
    "customer": {"phone": "+49 151 1234 5678", "name": "Trace Test"},
    "phone": {
        "caller": "+49 151 1234 5678",
        "called": "+49 30 1234 5678",
        "call_id": "c-trace",
        "direction": "inbound",
        "started_at": "",  # set per run
        "duration_s": 120,
    },
}


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client,
    ):
        await wait_until(lambda: _connected(app), timeout=60)
        await client.get("/readyz")  # a probe: counted, not traced
        yield client


async def _connected(app: FastAPI) -> bool:
    return bool(app.state.runtime.kafka_connected)


SKILLS = ("complaints", "technical", "billing", "vip", "escalations")


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


async def test_one_contact_is_one_trace_through_four_services_to_its_survey_and_all_serve_metrics(
    kafka_bootstrap: str,
) -> None:
    exporter = InMemorySpanExporter()
    tracing.use_span_processor(lambda _service: SimpleSpanProcessor(exporter))
    run = uuid.uuid4().hex[:8]
    suffix = f".trace-{run}"
    sla_name, feedback_name = f"sla-t{run}", f"feedback-t{run}"
    for group, catalog in (
        (f"intake.ticket-links{suffix}", "router.tickets"),
        (f"router.contacts{suffix}", "intake.contacts"),
        (f"router.escalations{suffix}", "sla.events"),
        (f"router.sla-deadlines{suffix}", "sla.events"),
        (f"router.follow-ups{suffix}", "feedback.events"),
        (f"{sla_name}.ticket-clocks", "router.tickets"),
        (f"{feedback_name}.tickets", "router.tickets"),
        (f"{feedback_name}.sla", "sla.events"),
        (f"{feedback_name}.contacts", "intake.contacts"),
    ):
        await start_group_at_end(kafka_bootstrap, group, [catalog])
    common = {"kafka_bootstrap": kafka_bootstrap, "log_json": False, "outbox_poll_interval_s": 0.2}
    try:
        async with AsyncExitStack() as stack:
            dbs = [SecretStr(await stack.enter_async_context(scratch_database())) for _ in "isrf"]
            intake_app = create_intake(
                IntakeSettings(database_url=dbs[0], consumer_group_suffix=suffix, **common)
            )
            router_app = create_router(
                RouterSettings(
                    database_url=dbs[1],
                    consumer_group_suffix=suffix,
                    assign_interval_s=0.2,
                    **common,
                )
            )
            sla_app = create_sla(SLASettings(service_name=sla_name, database_url=dbs[2], **common))
            feedback_app = create_feedback(
                FeedbackSettings(
                    service_name=feedback_name,
                    database_url=dbs[3],
                    survey_delay_phone_s=0,  # the survey is due at the resolution
                    scheduler_interval_s=0.2,
                    **common,
                )
            )
            intake = await stack.enter_async_context(running(intake_app))
            clients = [intake] + [
                await stack.enter_async_context(running(app))
                for app in (router_app, sla_app, feedback_app)
            ]
            router = clients[1]
            agent = {"name": "Tracy", "skills": dict.fromkeys(SKILLS, 3)}
            for path, body in (("", agent), ("/status", {"status": "available"})):
                made = await router.put(
                    f"/v1/agents/tracy{path}", json=body, headers=as_supervisor()
                )
                assert made.status_code == 200, made.text

            _, key = await create_key(
                intake_app.state.runtime.parts.pool,
                name="trace",
                channels=["phone"],
                rate_per_s=100,
                burst=100,
            )
            received = datetime.now(UTC).isoformat()
            posted = await intake.post(
                "/v1/contacts",
                json={
                    **CONTACT,
                    "external_id": f"call-{run}",
                    # Received now: a contact from the past is already overdue, and SLA's
                    # escalations and the router's early overflow would move its ticket away
                    # from the offers this test follows.
                    "received_at": received,
                    "phone": {**CONTACT["phone"], "started_at": received},
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert posted.status_code == 202, posted.text

            [post_span] = [
                s for s in exporter.get_finished_spans() if s.name == "POST /v1/contacts"
            ]
            trace_id = post_span.context.trace_id

            def in_trace() -> list[ReadableSpan]:
                return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

            async def every_service() -> set[str] | None:
                services = {_service(s) for s in in_trace()}
                wanted = {"intake", "router", sla_name, feedback_name}
                return services if wanted <= services else None

            await wait_until(every_service, timeout=60)

            # Later, the agent takes the ticket and resolves it: their own requests.
            def offered(agent: str) -> Callable[[], Awaitable[list[dict[str, str]] | None]]:
                async def offers() -> list[dict[str, str]] | None:
                    got = await router.get(f"/v1/agents/{agent}/offers", headers=as_agent(agent))
                    return got.json() or None

                return offers

            [first] = await wait_until(offered("tracy"), timeout=60)
            # Tracy lets it time out (the housekeeping run as if its time had passed): the
            # ticket goes back to its queue and is offered to Trent, who has just come in.
            assigner = router_app.state.runtime.parts.assigner
            # Its time runs out now (not a pretended later "now": the ticket's wait and the
            # queue's recent waits, which the breach forecast reads, stay real).
            async with router_app.state.runtime.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE offers SET expires_at = now() - interval '1 ms' WHERE id = :id"),
                    {"id": uuid.UUID(first["id"])},
                )
            assert await assigner.expire_offers(datetime.now(UTC)) in (0, 1)

            async def expired() -> bool:
                got = await router.get(f"/v1/tickets/{first['ticket_id']}", headers=as_supervisor())
                return bool(got.json()["status"] != "assigned")

            await wait_until(expired, timeout=30)
            trent = {"name": "Trent", "skills": dict.fromkeys(SKILLS, 3)}
            for path, body in (("", trent), ("/status", {"status": "available"})):
                made = await router.put(
                    f"/v1/agents/trent{path}", json=body, headers=as_supervisor()
                )
                assert made.status_code == 200, made.text
            [offer] = await wait_until(offered("trent"), timeout=60)
            assert offer["ticket_id"] == first["ticket_id"]

            async def assignment_taken() -> bool:  # by SLA and feedback, in the trace
                return any(
                    s.attributes is not None
                    and s.attributes.get("cc.event_type") == "ticket.assigned"
                    for s in in_trace()
                )

            await wait_until(assignment_taken, timeout=60)
            accepted = await router.post(
                f"/v1/offers/{offer['id']}/accept", headers=as_agent("trent")
            )
            assert accepted.status_code == 200, accepted.text
            resolved = await router.post(
                f"/v1/tickets/{offer['ticket_id']}/resolve",
                json={"resolution_code": "answered"},
                headers=as_agent("trent"),
            )
            assert resolved.status_code == 200, resolved.text

            async def survey_sent() -> bool:
                return any(s.name == "survey send" for s in in_trace())

            await wait_until(survey_sent, timeout=60)
            # /metrics answers on every service, with its own series.
            for client, name in zip(
                clients, ("intake", "router", sla_name, feedback_name), strict=True
            ):
                scraped = await client.get("/metrics")
                assert scraped.status_code == 200
                assert f'cc_outbox_backlog{{service="{name}"}}' in scraped.text
                assert f'cc_outbox_relay_leader{{service="{name}"}}' in scraped.text
            assert 'route="/v1/contacts"' in (await intake.get("/metrics")).text
    finally:
        tracing.use_span_processor(None)

    spans = in_trace()
    by_id = {s.context.span_id: s for s in spans}
    contacts_topic = intake_app.state.runtime.settings.kafka_topic_prefix + "intake.contacts"
    tickets_topic = intake_app.state.runtime.settings.kafka_topic_prefix + "router.tickets"
    routed = [s for s in spans if _service(s) == "router" and s.name == f"{contacts_topic} process"]
    assert routed, [(_service(s), s.name) for s in spans]
    # The router took the contact's event as a child of intake's request.
    assert routed[0].parent is not None
    assert routed[0].parent.span_id == post_span.context.span_id
    # SLA took the router's ticket event as a child of the router's span for the contact.
    clocked = [s for s in spans if _service(s) == sla_name and s.name == f"{tickets_topic} process"]
    assert clocked
    # (only the router's: its events never take the span another service gave the contact)
    assert all(
        s.parent is not None and _service(by_id[s.parent.span_id]) == "router" for s in clocked
    )
    # Feedback took both: the contact from intake and the ticket from the router.
    surveyed = {s.name for s in spans if _service(s) == feedback_name}
    assert f"{contacts_topic} process" in surveyed
    # The assignment round's offers (the first and, after it timed out, the second) and the
    # time-out continue the contact's trace, children of the router's taking of the contact;
    # the services that took their events did so as their children.
    offering = [s for s in spans if s.name == "ticket offer"]
    [expiring] = [s for s in spans if s.name == "offer expired"]
    assert len(offering) == 2
    for span in [*offering, expiring]:
        assert span.parent is not None
        assert by_id[span.parent.span_id] in routed
        assert span.attributes is not None
        assert span.attributes["cc.ticket_id"] == first["ticket_id"]
    offered_ids = {s.context.span_id for s in offering}
    took_assignment = [
        s
        for s in spans
        if s.attributes is not None and s.attributes.get("cc.event_type") == "ticket.assigned"
    ]
    assert took_assignment
    assert all(s.parent is not None and s.parent.span_id in offered_ids for s in took_assignment)
    took_expiry = [
        s for s in spans if s.parent is not None and s.parent.span_id == expiring.context.span_id
    ]
    assert {_service(s) for s in took_expiry} >= {sla_name}, [s.name for s in took_expiry]
    # The resolution continues the contact's trace: a child of the router's taking of the
    # contact, linked to the agent's request (a trace of its own, outside the contact's).
    [resolving] = [s for s in spans if s.name == "ticket resolve"]
    assert resolving.parent is not None
    assert by_id[resolving.parent.span_id] in routed
    [request] = [
        s for s in exporter.get_finished_spans() if s.name == "POST /v1/tickets/{ticket_id}/resolve"
    ]
    assert request.context.trace_id != trace_id
    assert [link.context.span_id for link in resolving.links] == [request.context.span_id]
    # Feedback took the resolution as its child, and the scheduler's sending of the survey
    # (later, from a round of its own) continues from there.
    [took_resolution] = [
        s
        for s in spans
        if _service(s) == feedback_name
        and s.name == f"{tickets_topic} process"
        and s.attributes is not None
        and s.attributes["cc.event_type"] == "ticket.resolved"
    ]
    assert took_resolution.parent is not None
    assert took_resolution.parent.span_id == resolving.context.span_id
    [sending] = [s for s in spans if s.name == "survey send"]
    assert _service(sending) == feedback_name
    assert sending.parent is not None
    # (not the span of SLA's event for the resolution, which feedback may take at the same time)
    assert sending.parent.span_id == took_resolution.context.span_id, by_id.get(
        sending.parent.span_id
    )
    # Every span has its parent in the trace: no hop started a trace of its own.
    assert all(s.parent is None or s.parent.span_id in by_id for s in spans)
    assert [s for s in spans if s.parent is None] == [post_span]
    # The probes' and the scraper's polling makes no spans.
    assert not [
        s for s in exporter.get_finished_spans() if "healthz" in s.name or "readyz" in s.name
    ]
    assert not [s for s in exporter.get_finished_spans() if "/metrics" in s.name]
