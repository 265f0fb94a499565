"""Links each contact to the ticket the router placed it on (for GET /v1/contacts/{id})."""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler
from ccshared.events import Envelope
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.events.payloads import TicketContactAdded, TicketOpened
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from intake.db.contacts import link_to_ticket, link_to_tickets


def link_contacts_to_tickets(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if isinstance(payload, TicketOpened | TicketContactAdded) and payload.contact_id:
            await link_to_ticket(conn, payload.contact_id, payload.ticket_id)

    return handle


def link_contacts_in_bulk(runtime: Runtime) -> BatchHandler:
    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        links: dict[uuid.UUID, uuid.UUID] = {}  # contact → its latest ticket in this batch
        for _, payload in events:
            if isinstance(payload, TicketOpened | TicketContactAdded) and payload.contact_id:
                links[payload.contact_id] = payload.ticket_id
        if links:
            await link_to_tickets(conn, links)

    return handle


TICKET_LINKS = ConsumerSpec(
    name="ticket-links",
    topics=[ROUTER_TICKETS],
    handler=link_contacts_to_tickets,
    event_types=frozenset({"ticket.opened", "ticket.contact_added"}),
    batch_handler=link_contacts_in_bulk,
    # The link serves GET /v1/contacts/{id}: a quarter of a second later costs no one, and
    # every record of router.tickets comes through here (most passed over).
    patience_ms=PATIENT,
)
