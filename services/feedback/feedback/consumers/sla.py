"""sla.events: targets met or breached (SLA attainment) and escalations, per ticket."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler, each_event
from ccshared.events import Envelope
from ccshared.events.payloads import SlaBreached, SlaEscalated, SlaMet
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from feedback.db.facts import FactChanges, rollup_at_end
from feedback.settings import FeedbackSettings


def sla_events(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        facts = FactChanges(conn)
        if isinstance(payload, SlaMet | SlaBreached):
            before = await facts.current(payload.ticket_id)
            outcomes = dict(before["sla_outcomes"] or {})
            # A target once breached stays breached, whatever arrives later.
            if outcomes.get(payload.metric) != "breached":
                outcomes[payload.metric] = "met" if isinstance(payload, SlaMet) else "breached"
            await facts.update(payload.ticket_id, {"sla_outcomes": outcomes}, before)
        elif isinstance(payload, SlaEscalated):
            await facts.update(payload.ticket_id, {"escalated": True})
        await facts.flush()

    return handle


def sla_consumer(settings: FeedbackSettings) -> ConsumerSpec:
    return ConsumerSpec(
        name="sla",
        topics=[settings.sla_topic],
        handler=sla_events,
        batch_handler=lambda runtime: each_event(sla_events(runtime), rollup_at_end),
        event_types=frozenset({"sla.met", "sla.breached", "sla.escalated"}),
        patience_ms=PATIENT,  # the KPIs' counts: nobody waits on them
    )
