"""router.tickets: stores each message.outbound and each notification.email_requested once,
queued for the delivery task, and wakes the task when the batch has committed."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler, one_event
from ccshared.events import Envelope
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.events.payloads import MessageOutbound, NotificationEmailRequested
from ccshared.service import ConsumerSpec, Runtime
from intake.bootstrap import parts_of
from intake.db.outbound import store_notification_emails, store_outbound


def store_outbound_messages(runtime: Runtime) -> BatchHandler:
    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        await store_outbound(conn, [p for _, p in events if isinstance(p, MessageOutbound)])
        await store_notification_emails(
            conn, [p for _, p in events if isinstance(p, NotificationEmailRequested)]
        )

    return handle


def _one_at_a_time(runtime: Runtime) -> Handler:
    return one_event(store_outbound_messages(runtime))


def wake_delivery(runtime: Runtime) -> Callable[[Envelope], None]:
    def after_commit(envelope: Envelope) -> None:
        parts_of(runtime).delivery.wake()

    return after_commit


OUTBOUND_MESSAGES = ConsumerSpec(
    name="outbound-messages",
    topics=[ROUTER_TICKETS],
    handler=_one_at_a_time,
    event_types=frozenset({"message.outbound", "notification.email_requested"}),
    batch_handler=store_outbound_messages,
    after_commit=wake_delivery,
)
