"""Links each contact to the ticket the router placed it on (for GET /v1/contacts/{id})."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler
from ccshared.events import Envelope
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.events.payloads import TicketContactAdded, TicketOpened
from ccshared.service import ConsumerSpec, Runtime

_LINK = text("UPDATE contacts SET ticket_id = :ticket_id WHERE id = :contact_id")


def link_contacts_to_tickets(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if isinstance(payload, TicketOpened | TicketContactAdded) and payload.contact_id:
            await conn.execute(
                _LINK, {"ticket_id": payload.ticket_id, "contact_id": payload.contact_id}
            )

    return handle


_LINK_MANY = text(
    "UPDATE contacts c SET ticket_id = u.ticket_id "
    "FROM unnest(CAST(:contact_ids AS uuid[]), CAST(:ticket_ids AS uuid[])) "
    "AS u(contact_id, ticket_id) WHERE c.id = u.contact_id"
)


def link_contacts_in_bulk(runtime: Runtime) -> BatchHandler:
    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        links: dict[object, object] = {}  # contact → its latest ticket in this batch
        for _, payload in events:
            if isinstance(payload, TicketOpened | TicketContactAdded) and payload.contact_id:
                links[payload.contact_id] = payload.ticket_id
        if links:
            await conn.execute(
                _LINK_MANY, {"contact_ids": list(links), "ticket_ids": list(links.values())}
            )

    return handle


TICKET_LINKS = ConsumerSpec(
    name="ticket-links",
    topics=[ROUTER_TICKETS],
    handler=link_contacts_to_tickets,
    event_types=frozenset({"ticket.opened", "ticket.contact_added"}),
    batch_handler=link_contacts_in_bulk,
)
