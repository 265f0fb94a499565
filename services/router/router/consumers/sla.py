"""sla.events from SLA, a fetch in one transaction each: `sla.escalated` raises a ticket's
priority or moves it to the escalation queue (`router.handlers.escalations`);
`sla.deadline_changed` stores its next deadline (`router.handlers.deadlines`)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler, one_event
from ccshared.events import Envelope
from ccshared.events.catalog import SLA_EVENTS
from ccshared.events.payloads import SlaDeadlineChanged, SlaEscalated
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from router.bootstrap import router_parts
from router.handlers.deadlines import apply_deadlines as store_deadlines
from router.handlers.escalations import apply_escalations as apply


def nudge_for_freed_agents(runtime: Runtime) -> Callable[[Envelope], None]:
    assigner = router_parts(runtime).assigner
    return lambda _event: assigner.nudge(agents_changed=True)


def apply_escalations(runtime: Runtime) -> Handler:
    return one_event(apply_escalations_in_bulk(runtime))


def apply_escalations_in_bulk(runtime: Runtime) -> BatchHandler:
    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        escalations: list[tuple[str | None, SlaEscalated]] = []
        for envelope, payload in events:
            assert isinstance(payload, SlaEscalated)
            escalations.append((envelope.correlation_id or str(envelope.event_id), payload))
        await apply(conn, escalations)

    return handle


ESCALATIONS = ConsumerSpec(
    name="escalations",
    topics=[SLA_EVENTS],
    handler=apply_escalations,
    # A fetch in one transaction, as for contacts: escalations come in bursts (every ticket
    # that an SLA policy level catches at once), one commit each fell behind them; and its
    # tickets locked and its changes written together.
    batch_handler=apply_escalations_in_bulk,
    event_types=frozenset({"sla.escalated"}),
    after_commit=nudge_for_freed_agents,  # a ticket moved to the escalation queue frees its agent
)


def apply_deadlines(runtime: Runtime) -> Handler:
    return one_event(apply_deadlines_in_bulk(runtime))


def apply_deadlines_in_bulk(runtime: Runtime) -> BatchHandler:
    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        changes = []
        for _envelope, payload in events:
            assert isinstance(payload, SlaDeadlineChanged)
            changes.append(payload)
        await store_deadlines(conn, changes)

    return handle


DEADLINES = ConsumerSpec(
    name="sla-deadlines",
    topics=[SLA_EVENTS],
    handler=apply_deadlines,
    # One statement per fetch: every ticket opened, answered or paused moves a deadline, so
    # these come at the rate tickets change; one commit each would be a transaction per change.
    # A consumer group of its own: a slow escalation batch does not hold deadlines back.
    batch_handler=apply_deadlines_in_bulk,
    event_types=frozenset({"sla.deadline_changed"}),
    patience_ms=PATIENT,  # deadlines are minutes to hours away: a quarter second is nothing
)
