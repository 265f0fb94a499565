"""customer.merged from the router: the merged customer's identities go to the customer it
became (`intake.db.customers`), so a new contact from any of them gets that customer's id.
This process's identity cache forgets them at once; another process's cache is corrected by
the writer, which holds back a contact whose cached customer turns out to be merged."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler
from ccshared.events import Envelope
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.events.payloads import CustomerMerged
from ccshared.service import PATIENT, ConsumerSpec, Runtime
from intake.bootstrap import parts_of
from intake.db.customers import merge_customer


def apply_customer_merges(runtime: Runtime) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if not isinstance(payload, CustomerMerged):
            return
        moved = await merge_customer(
            conn, payload.merged_customer_id, payload.customer_id, payload.at
        )
        cache = parts_of(runtime).writer.identities
        for identity in moved:
            cache.forget(identity)

    return handle


CUSTOMER_MERGES = ConsumerSpec(
    name="customer-merges",
    topics=[ROUTER_TICKETS],
    handler=apply_customer_merges,
    event_types=frozenset({"customer.merged"}),
    # Merges are rare and nobody waits on them here; every record of router.tickets comes
    # through (and is passed over).
    patience_ms=PATIENT,
)
