"""router.tickets' customer.merged: the merged customer's key account, call-backs, ticket
facts, contacts and surveys become the target's (`feedback.db.customers`)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler
from ccshared.events import Envelope
from ccshared.events.payloads import CustomerMerged
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from feedback.db.customers import merge_customer
from feedback.settings import FeedbackSettings


def customer_merges(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if isinstance(payload, CustomerMerged):
            await merge_customer(conn, payload.merged_customer_id, payload.customer_id)

    return handle


def customers_consumer(settings: FeedbackSettings) -> ConsumerSpec:
    return ConsumerSpec(
        name="customers",
        topics=[settings.tickets_topic],
        handler=customer_merges,
        event_types=frozenset({"customer.merged"}),
        patience_ms=PATIENT,  # reads every record of router.tickets for a rare one
    )
