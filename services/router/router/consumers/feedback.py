"""`followup.requested` from feedback (detractor answers, key-account call-backs): one
follow-up ticket each (`router.handlers.follow_ups`)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler, each_event
from ccshared.events import Envelope
from ccshared.events.catalog import FEEDBACK_EVENTS
from ccshared.events.payloads import FollowUpRequested
from ccshared.service import ConsumerSpec, Runtime
from router.bootstrap import router_parts
from router.consumers.contacts import nudge_for_new_ticket
from router.handlers.follow_ups import open_follow_up


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
