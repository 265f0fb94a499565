"""customer.merged from the router: the merged customer's identities go to the customer it
became, so a new contact from any of them lands on that customer, also through another intake
process whose identity cache still names the merged one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ccshared.events import new_event
from ccshared.events.payloads import CustomerMerged
from ccshared.kafka import make_producer
from ccshared.service import runtime_of
from intake.consumers.customers import apply_customer_merges
from tests.conftest import topic
from tests.helpers import wait_until
from tests.integration.intake.conftest import Intake


def _chat(external_id: str, **customer: str) -> dict[str, Any]:
    return {
        "channel": "chat",
        "external_id": external_id,
        "received_at": "2026-12-03T09:00:00Z",
        "customer": customer,
        "text": "我的订单还没到",
        "chat": {"session_id": f"s-{external_id}"},
    }


async def _deliver(intake: Intake, source: uuid.UUID, target: uuid.UUID) -> None:
    """The event as the consumer delivers it (the Kafka path is the shared consumer's)."""
    runtime = runtime_of(intake.app)
    payload = CustomerMerged(
        customer_id=target, merged_customer_id=source, actor="supervisor:lin", at=datetime.now(UTC)
    )
    async with runtime.engine.begin() as conn:
        await apply_customer_merges(runtime)(conn, new_event(payload, producer="router"), payload)


async def test_a_new_contact_from_a_merged_customers_identity_lands_on_the_target(
    intake_factory: Any,
) -> None:
    first = await intake_factory()
    second = await intake_factory()  # another process, whose cache learns the old owner
    key = await first.new_key()
    source = await first.post(_chat("c1", email="zs@example.com", phone="+8613800138000"), key)
    target = (await first.post(_chat("c2", email="zhang@example.com"), key)).json()["customer_id"]
    source_id = source.json()["customer_id"]
    warm = await second.post(_chat("c3", email="zs@example.com"), key)
    assert warm.json()["customer_id"] == source_id  # both caches now say: source

    await _deliver(first, uuid.UUID(source_id), uuid.UUID(target))
    await _deliver(first, uuid.UUID(source_id), uuid.UUID(target))  # a redelivery changes nothing

    for intake, external_id, hints in (
        (first, "c4", {"email": "ZS@example.com"}),
        (second, "c5", {"email": "zs@example.com"}),  # its cache still names the source
        (second, "c6", {"phone": "+86 138 0013 8000"}),
    ):
        response = await intake.post(_chat(external_id, **hints), key)
        assert response.status_code == 202, response.text
        assert response.json()["customer_id"] == target, external_id
    owners = await first.db.fetch(
        "SELECT DISTINCT customer_id FROM customer_identities WHERE value IN "
        "('zs@example.com', '+8613800138000', 'zhang@example.com')"
    )
    assert [str(r["customer_id"]) for r in owners] == [target]
    merged = await first.db.fetchrow(
        "SELECT merged_into FROM customers WHERE id = $1", uuid.UUID(source_id)
    )
    assert str(merged["merged_into"]) == target


async def test_a_merge_of_a_customer_merged_into_earlier_moves_both(intake: Intake) -> None:
    key = await intake.new_key()
    a, b, c = [
        (await intake.post(_chat(f"m{n}", email=f"m{n}@example.com"), key)).json()["customer_id"]
        for n in range(3)
    ]
    await _deliver(intake, uuid.UUID(a), uuid.UUID(b))
    await _deliver(intake, uuid.UUID(b), uuid.UUID(c))
    rows = await intake.db.fetch(
        "SELECT id, merged_into FROM customers WHERE merged_into IS NOT NULL ORDER BY id"
    )
    assert {str(r["id"]): str(r["merged_into"]) for r in rows} == {a: c, b: c}
    again = await intake.post(_chat("m9", email="m0@example.com"), key)
    assert again.json()["customer_id"] == c


async def test_intake_takes_customer_merged_from_the_router_topic(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    source, target = [
        (await intake.post(_chat(f"k{n}", email=f"k{n}@example.com"), key)).json()["customer_id"]
        for n in range(2)
    ]
    event = new_event(
        CustomerMerged(
            customer_id=uuid.UUID(target),
            merged_customer_id=uuid.UUID(source),
            actor="supervisor:lin",
            at=datetime.now(UTC),
        ),
        producer="router",
    )
    producer = make_producer(kafka_bootstrap, "fake-router")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic(event.topic),
            event.to_bytes(),
            key=event.key.encode(),
            headers=[("event_type", event.event_type.encode())],
        )
    finally:
        await producer.stop()

    async def applied() -> bool:
        merged_into = await intake.db.fetchval(
            "SELECT merged_into FROM customers WHERE id = $1", uuid.UUID(source)
        )
        return bool(str(merged_into) == target)

    await wait_until(applied, timeout=30)
    again = await intake.post(_chat("k9", email="k0@example.com"), key)
    assert again.json()["customer_id"] == target


async def test_merges_read_out_of_order_still_end_on_the_last_target(intake: Intake) -> None:
    key = await intake.new_key()
    a, b, c = [
        (await intake.post(_chat(f"o{n}", email=f"o{n}@example.com"), key)).json()["customer_id"]
        for n in range(3)
    ]
    # The router merged a into b, then b into c; the events are keyed by target, so intake may
    # read the second first.
    await _deliver(intake, uuid.UUID(b), uuid.UUID(c))
    await _deliver(intake, uuid.UUID(a), uuid.UUID(b))
    for n in range(3):
        again = await intake.post(_chat(f"o{n}-again", email=f"o{n}@example.com"), key)
        assert again.status_code == 202, again.text
        assert again.json()["customer_id"] == c, n
