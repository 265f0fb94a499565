"""Moves each ticket's SLA clocks with the router's ticket events (see sla.db.tracking)."""

from __future__ import annotations

from ccshared.consumer import Handler, each_event
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.service import ConsumerSpec, Runtime
from sla.bootstrap import parts_of
from sla.db.tracking import TICKET_EVENT_TYPES


def track_ticket_clocks(runtime: Runtime) -> Handler:
    return parts_of(runtime).tracker.handle


TICKET_CLOCKS = ConsumerSpec(
    name="ticket-clocks",
    topics=[ROUTER_TICKETS],
    handler=track_ticket_clocks,
    # Everything one fetch brings in one transaction (one commit, one offset commit) instead
    # of one each: the router publishes several events per ticket, and one commit per event
    # capped this consumer below the rate they come at under load (the end-to-end benchmark
    # saw SLA clocks fire 17 s late). A failed batch is taken event by event as before.
    batch_handler=lambda runtime: each_event(track_ticket_clocks(runtime)),
    event_types=TICKET_EVENT_TYPES,
)
