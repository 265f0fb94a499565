"""Links each contact to the ticket the router placed it on (for GET /v1/contacts/{id})."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler
from ccshared.events import Envelope
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


TICKET_LINKS = ConsumerSpec(
    name="ticket-links",
    topics=["router.tickets"],
    handler=link_contacts_to_tickets,
    event_types=frozenset({"ticket.opened", "ticket.contact_added"}),
)
