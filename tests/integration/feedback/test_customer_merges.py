"""customer.merged from the router: what feedback keeps per customer (key account and its
call-backs, ticket facts, contacts, surveys) follows the merged customer to the target."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ccshared.events.payloads import CustomerMerged
from tests.helpers import wait_until
from tests.integration.feedback.conftest import Feedback, FeedbackEvents, now
from tests.integration.feedback.tickets import contact, opened, resolved


def merged(source: uuid.UUID, target: uuid.UUID) -> CustomerMerged:
    return CustomerMerged(
        customer_id=target, merged_customer_id=source, actor="supervisor:lin", at=now()
    )


async def _key_account(feedback: Feedback, customer: uuid.UUID, started: datetime) -> None:
    created = await feedback.client.post(
        "/v1/key-accounts",
        json={
            "customer_id": str(customer),
            "name": f"Account {customer}",
            "relationship_started_at": started.isoformat(),
        },
    )
    assert created.status_code == 201, created.text


async def _owners(feedback: Feedback, table: str, *customers: uuid.UUID) -> dict[Any, int]:
    rows = await feedback.db.fetch(
        f"SELECT customer_id, count(*) AS n FROM {table} "
        "WHERE customer_id = ANY($1) GROUP BY customer_id",
        list(customers),
    )
    return {r["customer_id"]: r["n"] for r in rows}


async def test_a_merged_customers_rows_follow_it_to_the_target(feedback: Feedback) -> None:
    source, target, ticket = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _key_account(feedback, source, datetime(2024, 5, 1, tzinfo=UTC))
    at = now() - timedelta(minutes=30)
    await feedback.publish(contact(source, at), producer="intake")
    await feedback.publish(opened(ticket, source, at), resolved(ticket, source, at, now()))
    await feedback.wait_survey(ticket, "sent")

    await feedback.publish(merged(source, target))

    async def moved() -> bool:
        return await _owners(feedback, "surveys", source, target) == {target: 1}

    await wait_until(moved, timeout=30)
    assert await _owners(feedback, "ticket_facts", source, target) == {target: 1}
    assert await _owners(feedback, "customer_contacts", source, target) == {target: 1}
    assert (await feedback.client.get(f"/v1/key-accounts/{source}")).status_code == 404
    account = await feedback.client.get(f"/v1/key-accounts/{target}")
    assert account.status_code == 200
    assert account.json()["name"] == f"Account {source}"


async def test_when_both_are_key_accounts_the_targets_stays_from_the_earlier_start(
    feedback: Feedback,
) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    await _key_account(feedback, source, datetime(2020, 1, 15, tzinfo=UTC))
    await _key_account(feedback, target, datetime(2024, 6, 1, tzinfo=UTC))
    await feedback.publish(merged(source, target))

    async def gone() -> bool:
        return (await feedback.client.get(f"/v1/key-accounts/{source}")).status_code == 404

    await wait_until(gone, timeout=30)
    account = (await feedback.client.get(f"/v1/key-accounts/{target}")).json()
    assert account["name"] == f"Account {target}"
    assert account["relationship_started_at"].startswith("2020-01-15")


async def test_merges_read_out_of_order_end_on_the_last_target(feedback: Feedback) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = now() - timedelta(minutes=5)
    for customer in (a, b):
        await feedback.publish(contact(customer, at), producer="intake")

    async def remembered() -> bool:
        return len(await _owners(feedback, "customer_contacts", a, b)) == 2

    await wait_until(remembered, timeout=30)
    # The router merged a into b, then b into c: keyed by target, feedback may read the second
    # first (forced here).
    await feedback.publish(merged(b, c))

    async def b_gone() -> bool:
        return await _owners(feedback, "customer_contacts", b, c) == {c: 1}

    await wait_until(b_gone, timeout=30)
    await feedback.publish(merged(a, b))

    async def on_c() -> bool:
        return await _owners(feedback, "customer_contacts", a, b, c) == {c: 2}

    await wait_until(on_c, timeout=30)


async def test_a_merged_key_account_announces_both_customers_segments(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    """The router and SLA keep segments from the registry's events: a key account merged into
    another customer makes the target a key account and the merged customer none, each with
    the next version of that customer."""
    source, target = uuid.uuid4(), uuid.uuid4()
    await _key_account(feedback, source, datetime(2024, 5, 1, tzinfo=UTC))
    await feedback.publish(merged(source, target))
    [to_target] = await feedback_events.wait_event(
        "customer.segment_changed", count=1, customer_id=target
    )
    assert (to_target["payload"]["segment"], to_target["payload"]["version"]) == (
        "key_account",
        1,
    )
    events = await feedback_events.wait_event(
        "customer.segment_changed", count=2, customer_id=source
    )
    assert [(e["payload"]["segment"], e["payload"]["version"]) for e in events] == [
        ("key_account", 1),
        (None, 2),
    ]


async def test_merging_a_customer_who_is_no_key_account_announces_no_segment(
    feedback: Feedback, feedback_events: FeedbackEvents
) -> None:
    source, target, witness = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feedback.publish(merged(source, target))
    # A key account created after the merge: its event is on the topic after anything the
    # merge would have published, so by then the merge's absence is seen, not assumed.
    await _key_account(feedback, witness, datetime(2024, 5, 1, tzinfo=UTC))
    await feedback_events.wait_event("customer.segment_changed", count=1, customer_id=witness)
    for customer in (source, target):
        assert feedback_events.events("customer.segment_changed", customer_id=customer) == []
