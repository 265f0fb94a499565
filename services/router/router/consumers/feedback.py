"""feedback.events: `followup.requested` (detractor answers, key-account call-backs) opens one
follow-up ticket each (`router.handlers.follow_ups`); `customer.segment_changed` (the
key-account registry) stores a customer's segment, a fetch in one statement
(`router.handlers.segments`)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler, each_event, one_event
from ccshared.events import Envelope
from ccshared.events.catalog import FEEDBACK_EVENTS
from ccshared.events.payloads import CustomerSegmentChanged, FollowUpRequested
from ccshared.service import ConsumerSpec, Runtime
from router.bootstrap import router_parts
from router.consumers.contacts import nudge_for_new_ticket
from router.handlers.follow_ups import open_follow_up
from router.handlers.segments import apply_segments


def open_follow_ups(runtime: Runtime) -> Handler:
    parts = router_parts(runtime)

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, FollowUpRequested)
        policy, rules = await parts.policies.current(), await parts.rules.current()
        await open_follow_up(conn, payload, policy, rules)

    return handle


FOLLOW_UPS = ConsumerSpec(
    name="follow-ups",
    topics=[FEEDBACK_EVENTS],
    handler=open_follow_ups,
    batch_handler=lambda runtime: each_event(open_follow_ups(runtime)),
    event_types=frozenset({"followup.requested"}),
    after_commit=nudge_for_new_ticket,
)


def store_segments(runtime: Runtime) -> Handler:
    return one_event(store_segments_in_bulk(runtime))


def store_segments_in_bulk(runtime: Runtime) -> BatchHandler:
    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        changes = []
        for _envelope, payload in events:
            assert isinstance(payload, CustomerSegmentChanged)
            changes.append(payload)
        await apply_segments(conn, changes)

    return handle


SEGMENTS = ConsumerSpec(
    name="customer-segments",
    topics=[FEEDBACK_EVENTS],
    handler=store_segments,
    # A group of its own: a follow-up that fails and retries does not hold segments back.
    batch_handler=store_segments_in_bulk,
    event_types=frozenset({"customer.segment_changed"}),
)
