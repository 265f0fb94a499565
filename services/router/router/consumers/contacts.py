"""`contact.received` from intake: each contact adds to its customer's view (a merged
customer's going to the one it became) and joins or opens a ticket; a fetch's contacts are
taken in one transaction (`router.handlers.contacts.receive_contacts`)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler
from ccshared.events import Envelope
from ccshared.events.catalog import INTAKE_CONTACTS
from ccshared.events.payloads import ContactReceived
from ccshared.service import ConsumerSpec, Runtime
from router.bootstrap import router_parts
from router.handlers.contacts import receive_contact, receive_contacts
from router.handlers.customers import note_contacts


def nudge_for_new_ticket(runtime: Runtime) -> Callable[[Envelope], None]:
    assigner = router_parts(runtime).assigner
    return lambda _event: assigner.nudge(agents_changed=False)  # a new or moved ticket


def contacts_to_tickets(runtime: Runtime) -> Handler:
    parts = router_parts(runtime)

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ContactReceived)
        (contact,) = await note_contacts(conn, [payload])
        policy, rules = await parts.policies.current(), await parts.rules.current()
        await receive_contact(conn, contact, policy, rules)

    return handle


def contacts_to_tickets_in_bulk(runtime: Runtime) -> BatchHandler:
    parts = router_parts(runtime)

    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        payloads: list[ContactReceived] = []
        for _, payload in events:
            assert isinstance(payload, ContactReceived)
            payloads.append(payload)
        noted = await note_contacts(conn, payloads)
        contacts = [
            (envelope.correlation_id or str(envelope.event_id), contact)
            for (envelope, _), contact in zip(events, noted, strict=True)
        ]
        policy, rules = await parts.policies.current(), await parts.rules.current()
        await receive_contacts(conn, contacts, policy, rules)

    return handle


CONTACTS = ConsumerSpec(
    name="contacts",
    topics=[INTAKE_CONTACTS],
    handler=contacts_to_tickets,
    event_types=frozenset({"contact.received"}),
    after_commit=nudge_for_new_ticket,
    batch_handler=contacts_to_tickets_in_bulk,
)
