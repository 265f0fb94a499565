"""intake.contacts: customers' messages, for messaging reply windows and observed FCR (a new
contact shortly after a resolution means the matter was not solved)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler, each_event
from ccshared.events import Envelope
from ccshared.events.payloads import ContactReceived
from ccshared.service import ConsumerSpec, Runtime
from feedback.db.facts import FactChanges, lock_customer, rollup_at_end
from feedback.settings import FeedbackSettings

_REMEMBER = text(
    "INSERT INTO customer_contacts (contact_id, customer_id, channel, received_at) "
    "VALUES (:contact_id, :customer_id, :channel, :received_at) ON CONFLICT DO NOTHING"
)
_RESOLVED_JUST_BEFORE = text(
    "SELECT ticket_id FROM ticket_facts WHERE customer_id = :customer_id "
    " AND resolved_at < :received_at AND resolved_at >= :since AND NOT recontacted "
    "ORDER BY ticket_id"
)


def contact_events(runtime: Runtime) -> Handler:
    settings = runtime.settings
    assert isinstance(settings, FeedbackSettings)
    window = timedelta(days=settings.observed_fcr_days)

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if not isinstance(payload, ContactReceived):
            return
        await lock_customer(conn, payload.customer_id)
        await conn.execute(
            _REMEMBER,
            {
                "contact_id": payload.contact_id,
                "customer_id": payload.customer_id,
                "channel": payload.channel,
                "received_at": payload.received_at,
            },
        )
        tickets = (
            await conn.execute(
                _RESOLVED_JUST_BEFORE,
                {
                    "customer_id": payload.customer_id,
                    "received_at": payload.received_at,
                    "since": payload.received_at - window,
                },
            )
        ).scalars()
        facts = FactChanges(conn)
        for ticket_id in list(tickets):
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
    )
