"""SLA matches a new ticket's policy with the customer's segment from feedback's key-account
registry (customer.segment_changed on feedback.events): a key account's ticket gets the
key-account policy even if the router's ticket.opened does not say so, a ticket claiming
`key_account` without the registry's word does not, and an older segment event delivered late
changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ccshared.events import new_event
from ccshared.events.catalog import FEEDBACK_EVENTS
from ccshared.events.payloads import CustomerSegmentChanged, TicketOpened
from ccshared.kafka import commit_group_at_end, make_producer
from tests.conftest import topic
from tests.helpers import wait_until
from tests.integration.sla.conftest import CATEGORY, Router, Sla, SlaFactory, now

KEY_POLICY = {
    "id": "key-accounts",
    "name": "Key accounts",
    "rank": 1,
    "conditions": {"segment": ["key_account"], "category": [CATEGORY]},
    "targets": {"first_response": 900, "resolution": 4 * 3600},
    "calendar_id": "24x7",
}
OTHERS = {**KEY_POLICY, "id": "others", "rank": 2, "conditions": {"category": [CATEGORY]}}


def opened(customer: uuid.UUID, segment: str | None = None) -> TicketOpened:
    return TicketOpened(
        ticket_id=uuid.uuid4(),
        customer_id=customer,
        channel="chat",
        category=CATEGORY,
        priority="normal",
        queue_id="frontline",
        segment=segment,
        opened_at=now(),
    )


def changed(customer: uuid.UUID, version: int, segment: str | None) -> CustomerSegmentChanged:
    return CustomerSegmentChanged(
        customer_id=customer,
        segment=segment,
        version=version,
        source="feedback.key_accounts",
        at=datetime.now(UTC),
    )


async def publish_segments(bootstrap: str, *changes: CustomerSegmentChanged) -> None:
    producer = make_producer(bootstrap, "fake-feedback")
    await producer.start()
    try:
        for change in changes:
            event = new_event(change, producer="feedback")
            await producer.send_and_wait(
                topic(FEEDBACK_EVENTS),
                event.to_bytes(),
                key=event.key.encode(),
                headers=[("event_type", event.event_type.encode())],
            )
    finally:
        await producer.stop()


async def policy_of(sla: Sla, ticket_id: uuid.UUID) -> Any:
    async def matched() -> Any:
        response = await sla.client.get(f"/v1/tickets/{ticket_id}/sla")
        return response.json()["policy_id"] if response.status_code == 200 else None

    return await wait_until(matched, timeout=30)


async def test_new_tickets_are_matched_with_the_registrys_segment(
    sla_factory: SlaFactory, router: Router, kafka_bootstrap: str
) -> None:
    group = f"{sla_factory.service_name}.customer-segments"
    await commit_group_at_end(kafka_bootstrap, group, [topic(FEEDBACK_EVENTS)])
    sla = await sla_factory.start()
    for policy in (KEY_POLICY, OTHERS):
        assert (await sla.client.post("/v1/policies", json=policy)).status_code == 201
    key, removed, claimed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish_segments(
        kafka_bootstrap,
        changed(key, 1, "key_account"),
        changed(removed, 2, None),
        changed(removed, 1, "key_account"),  # older, delivered late
    )

    async def stored() -> bool:
        n = await sla.count(
            "SELECT count(*) FROM sla_customer_segments WHERE customer_id = ANY($1::uuid[])",
            [key, removed],
        )
        return n == 2

    await wait_until(stored, timeout=30)
    row = await sla.db.fetchrow(
        "SELECT segment, version FROM sla_customer_segments WHERE customer_id = $1", removed
    )
    assert (row["segment"], row["version"]) == (None, 2)
    mine, gone, claiming = (
        opened(key),
        opened(removed, "key_account"),
        opened(claimed, "key_account"),
    )
    await router.publish(mine, gone, claiming)
    assert await policy_of(sla, mine.ticket_id) == "key-accounts"
    assert await policy_of(sla, gone.ticket_id) == "others"
    assert await policy_of(sla, claiming.ticket_id) == "others"
