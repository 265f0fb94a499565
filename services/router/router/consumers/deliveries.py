"""`message.delivery_changed` from intake: each reply's delivery state stored with it, a
failure told to the ticket's owner (`router.handlers.deliveries`)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler
from ccshared.events import Envelope
from ccshared.events.catalog import INTAKE_DELIVERIES
from ccshared.events.payloads import MessageDeliveryChanged
from ccshared.service import ConsumerSpec, Runtime
from router.handlers.deliveries import apply_deliveries, apply_delivery


def store_delivery_states(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, MessageDeliveryChanged)
        await apply_delivery(conn, payload)

    return handle


def store_fetched_delivery_states(runtime: Runtime) -> BatchHandler:
    """A fetch's reports in a few statements (`apply_deliveries`): a reply sends one or two
    (sent, delivered), and they come in fast when agents reply fast."""

    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        taken = [(e, p) for e, p in events if isinstance(p, MessageDeliveryChanged)]
        await apply_deliveries(
            conn,
            [p for _, p in taken],
            [e.correlation_id or str(e.event_id) for e, _ in taken],
        )

    return handle


DELIVERIES = ConsumerSpec(
    name="deliveries",
    topics=[INTAKE_DELIVERIES],
    handler=store_delivery_states,
    batch_handler=store_fetched_delivery_states,
    event_types=frozenset({"message.delivery_changed"}),
)
