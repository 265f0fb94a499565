"""feedback.events, in one consumer group: `followup.requested` (detractor answers, key-account
call-backs) opens one follow-up ticket each (`router.handlers.follow_ups`);
`customer.segment_changed` (the key-account registry) stores the customer's segment
(`router.handlers.segments`). One group, so a key account's call-back, published after the
account's segment in the customer's partition, is opened after that segment is stored and
reaches VIP care; a group each could open it first."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler, one_event
from ccshared.events import Envelope
from ccshared.events.catalog import FEEDBACK_EVENTS
from ccshared.events.payloads import CustomerSegmentChanged, FollowUpRequested
from ccshared.logging import correlation_id
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from router.bootstrap import router_parts
from router.consumers.contacts import nudge_for_new_ticket
from router.handlers.follow_ups import open_follow_up
from router.handlers.segments import apply_segments


def from_feedback(runtime: Runtime) -> Handler:
    return one_event(from_feedback_in_bulk(runtime))


def from_feedback_in_bulk(runtime: Runtime) -> BatchHandler:
    """A fetch in order: consecutive segment changes are stored in one statement, each
    follow-up after the changes before it."""
    parts = router_parts(runtime)

    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        segments: list[CustomerSegmentChanged] = []
        for envelope, payload in events:
            if isinstance(payload, CustomerSegmentChanged):
                segments.append(payload)
                continue
            assert isinstance(payload, FollowUpRequested)
            await apply_segments(conn, segments)
            segments = []
            policy, rules = await parts.policies.current(), await parts.rules.current()
            token = correlation_id.set(envelope.correlation_id or str(envelope.event_id))
            try:
                await open_follow_up(conn, payload, policy, rules)
            finally:
                correlation_id.reset(token)
        await apply_segments(conn, segments)

    return handle


FROM_FEEDBACK = ConsumerSpec(
    name="follow-ups",  # the group's name from before it took segments too
    topics=[FEEDBACK_EVENTS],
    handler=from_feedback,
    batch_handler=from_feedback_in_bulk,
    event_types=frozenset({"followup.requested", "customer.segment_changed"}),
    after_commit=nudge_for_new_ticket,
    patience_ms=PATIENT,  # a follow-up or a segment a quarter of a second later costs no one
)
