"""One contact is one trace: intake's POST, and the spans of every service that takes the
events it causes (router, SLA, feedback, and intake again for the ticket link), joined through
the `traceparent` each event carries from its outbox row to its consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

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
from tests.helpers import wait_until

CONTACT = {
    "channel": "phone",
    "external_id": "",  # set per run
    "received_at": "2026-01-05T09:30:00Z",
    "text": "My washing machine is leaking, I want to complain.",
    "language": "en",
    "customer": {"phone": "+49 151 1234 5678", "name": "Trace Test"},
    "phone": {
        "caller": "+49 151 1234 5678",
        "called": "+49 30 1234 5678",
        "call_id": "c-trace",
        "direction": "inbound",
        "started_at": "2026-01-05T09:30:00Z",
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


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


async def test_one_contact_is_one_trace_across_the_four_services_and_each_serves_metrics(
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
                FeedbackSettings(service_name=feedback_name, database_url=dbs[3], **common)
            )
            intake = await stack.enter_async_context(running(intake_app))
            clients = [intake] + [
                await stack.enter_async_context(running(app))
                for app in (router_app, sla_app, feedback_app)
            ]

            _, key = await create_key(
                intake_app.state.runtime.parts.pool,
                name="trace",
                channels=["phone"],
                rate_per_s=100,
                burst=100,
            )
            posted = await intake.post(
                "/v1/contacts",
                json={**CONTACT, "external_id": f"call-{run}"},
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
    # Every span has its parent in the trace: no hop started a trace of its own.
    assert all(s.parent is None or s.parent.span_id in by_id for s in spans)
    assert [s for s in spans if s.parent is None] == [post_span]
    # The probes' and the scraper's polling makes no spans.
    assert not [
        s for s in exporter.get_finished_spans() if "healthz" in s.name or "readyz" in s.name
    ]
    assert not [s for s in exporter.get_finished_spans() if "/metrics" in s.name]
