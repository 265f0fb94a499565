"""Moves each ticket's SLA clocks with the router's ticket events (see sla.tracking)."""

from __future__ import annotations

from ccshared.consumer import Handler
from ccshared.service import ConsumerSpec, Runtime
from sla.tracking import TICKET_EVENT_TYPES, TicketTracker


def track_ticket_clocks(runtime: Runtime) -> Handler:
    tracker: TicketTracker = runtime.extras["tracker"]
    return tracker.handle


TICKET_CLOCKS = ConsumerSpec(
    name="ticket-clocks",
    topics=["router.tickets"],
    handler=track_ticket_clocks,
    event_types=TICKET_EVENT_TYPES,
)
