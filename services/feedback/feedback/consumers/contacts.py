"""intake.contacts: customers' messages, for messaging reply windows and observed FCR (a new
contact shortly after a resolution means the matter was not solved)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler, each_event
from ccshared.events import Envelope
from ccshared.events.payloads import ContactReceived
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from feedback.db.contacts import remember_contact
from feedback.db.facts import (
    FactChanges,
    lock_customer,
    resolved_without_recontact,
    rollup_at_end,
)
from feedback.settings import FeedbackSettings


def contact_events(runtime: Runtime) -> Handler:
    settings = runtime.settings
    assert isinstance(settings, FeedbackSettings)
    window = timedelta(days=settings.observed_fcr_days)

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if not isinstance(payload, ContactReceived):
            return
        await lock_customer(conn, payload.customer_id)
        await remember_contact(
            conn, payload.contact_id, payload.customer_id, payload.channel, payload.received_at
        )
        tickets = await resolved_without_recontact(
            conn, payload.customer_id, payload.received_at - window, payload.received_at
        )
        facts = FactChanges(conn)
        for ticket_id in tickets:
            await facts.update(ticket_id, {"recontacted": True})
        await facts.flush()

    return handle


def contacts_consumer(settings: FeedbackSettings) -> ConsumerSpec:
    return ConsumerSpec(
        name="contacts",
        topics=[settings.contacts_topic],
        handler=contact_events,
        batch_handler=lambda runtime: each_event(contact_events(runtime), rollup_at_end),
        event_types=frozenset({"contact.received"}),
        patience_ms=PATIENT,  # when the customer wrote, for FCR: nobody waits on it
    )
