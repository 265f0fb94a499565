"""`customer.segment_changed` from feedback's key-account registry: each customer's segment,
stored only forward, for matching new tickets' policies (`sla.db.segments`)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler, each_event
from ccshared.events import Envelope
from ccshared.events.catalog import FEEDBACK_EVENTS
from ccshared.events.payloads import CustomerSegmentChanged
from ccshared.service import ConsumerSpec, Runtime
from sla.db.segments import store_segment


def store_segments(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, CustomerSegmentChanged)
        await store_segment(conn, payload)

    return handle


CUSTOMER_SEGMENTS = ConsumerSpec(
    name="customer-segments",
    topics=[FEEDBACK_EVENTS],
    handler=store_segments,
    batch_handler=lambda runtime: each_event(store_segments(runtime)),
    event_types=frozenset({"customer.segment_changed"}),
)
