"""Key accounts come from feedback's key-account registry (`customer.segment_changed`), not from
an integration's unverified `customer.account_id`: the router's next ticket for a registered key
account is routed to VIP care, a deactivated one's is not, an older event changes nothing, and a
key account's call-back reaches the VIP queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ccshared.events import new_event
from ccshared.events.payloads import CustomerSegmentChanged, FollowUpRequested
from router.consumers.contacts import contacts_to_tickets_in_bulk
from router.consumers.feedback import from_feedback, from_feedback_in_bulk
from tests.integration.router.conftest import Router, contact

URGENT = "Please call me back about my account, it is urgent."


def changed(customer: uuid.UUID, version: int, segment: str | None) -> CustomerSegmentChanged:
    return CustomerSegmentChanged(
        customer_id=customer,
        segment=segment,
        version=version,
        source="feedback.key_accounts",
        at=datetime.now(UTC),
    )


async def deliver(router: Router, *changes: CustomerSegmentChanged | FollowUpRequested) -> None:
    """One event at a time, as the consumer's one-by-one path does."""
    handler = from_feedback(router.runtime)
    for change in changes:
        async with router.runtime.engine.begin() as conn:
            await handler(conn, new_event(change, producer="feedback"), change)


async def deliver_fetch(
    router: Router, *changes: CustomerSegmentChanged | FollowUpRequested
) -> None:
    """A whole fetch at once, in order, as the consumer's batch path does."""
    handler = from_feedback_in_bulk(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, [(new_event(c, producer="feedback"), c) for c in changes])


async def phone_ticket(
    router: Router, customer: uuid.UUID, account_id: str | None = None
) -> dict[str, Any]:
    made = contact(customer, channel="phone", text_=URGENT, account_id=account_id)
    return await router.ticket(await router.receive(made))


async def anyone_elses_queue(router: Router) -> str:
    """Where the same message of a customer with no segment goes (the classifier decides the
    specialist queue; a segment only changes it to VIP care)."""
    queue = (await phone_ticket(router, uuid.uuid4()))["queue_id"]
    assert queue != "vip"
    return str(queue)


async def test_a_registered_key_accounts_ticket_is_routed_to_vip_care(router: Router) -> None:
    customer = uuid.uuid4()
    await deliver(router, changed(customer, 1, "key_account"))
    ticket = await phone_ticket(router, customer)
    assert ticket["segment"] == "key_account"
    assert ticket["queue_id"] == "vip"
    assert ticket["policy_step"] == "vip-care"


async def test_a_deactivated_key_account_is_routed_as_anyone_else(router: Router) -> None:
    customer = uuid.uuid4()
    await deliver(router, changed(customer, 1, "key_account"), changed(customer, 2, None))
    ticket = await phone_ticket(router, customer)
    assert ticket["segment"] is None
    assert ticket["queue_id"] == await anyone_elses_queue(router)


async def test_an_older_segment_event_delivered_late_changes_nothing(router: Router) -> None:
    removed, made = uuid.uuid4(), uuid.uuid4()
    await deliver(router, changed(removed, 3, None))
    await deliver(router, changed(removed, 2, "key_account"))  # late
    await deliver(router, changed(removed, 3, "key_account"))  # same version again: ignored
    await deliver_fetch(router, changed(made, 5, "key_account"), changed(made, 4, None))
    assert (await phone_ticket(router, removed))["queue_id"] == await anyone_elses_queue(router)
    assert (await phone_ticket(router, made))["queue_id"] == "vip"
    rows = await router.sql(
        "SELECT customer_id, segment, version FROM customer_segments ORDER BY version"
    )
    assert [(r.customer_id, r.segment, r.version) for r in rows] == [
        (removed, None, 3),
        (made, "key_account", 5),
    ]


async def test_an_integration_claiming_an_account_id_gets_no_vip_routing(router: Router) -> None:
    """Anyone with an API key can send `customer.account_id` (or `metadata.segment:
    key_account`): neither makes a key account."""
    anyone = await anyone_elses_queue(router)
    ticket = await phone_ticket(router, uuid.uuid4(), account_id="ACME-0042")
    assert ticket["segment"] is None
    assert ticket["queue_id"] == anyone
    claimed = await router.receive(
        contact(uuid.uuid4(), channel="phone", text_=URGENT, metadata={"segment": "key_account"})
    )
    ticket = await router.ticket(claimed)
    assert ticket["segment"] is None
    assert ticket["queue_id"] == anyone


async def test_a_batch_of_contacts_takes_each_customers_registered_segment(
    router: Router,
) -> None:
    key, other = uuid.uuid4(), uuid.uuid4()
    anyone = await anyone_elses_queue(router)
    await deliver(router, changed(key, 1, "key_account"))
    handler_contacts = [
        contact(key, channel="phone", text_=URGENT),
        contact(other, channel="phone", text_=URGENT, account_id="ACME-1"),
    ]
    handler = contacts_to_tickets_in_bulk(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, [(new_event(c, producer="intake"), c) for c in handler_contacts])
    rows = await router.sql(
        "SELECT t.customer_id, t.segment, t.queue_id FROM tickets t "
        "WHERE t.customer_id IN (:a, :b)",
        a=key,
        b=other,
    )
    assert {(r.customer_id, r.segment, r.queue_id) for r in rows} == {
        (key, "key_account", "vip"),
        (other, None, anyone),
    }


def call_back(customer: uuid.UUID) -> FollowUpRequested:
    return FollowUpRequested(
        follow_up_id=uuid.uuid4(),
        customer_id=customer,
        reason="key_account_callback",
        channel="phone",
        note="Scheduled call-back for key account ACME",
        due_at=datetime.now(UTC),
    )


async def test_a_key_accounts_call_back_reaches_the_vip_queue(router: Router) -> None:
    customer = uuid.uuid4()
    await deliver(router, changed(customer, 1, "key_account"))
    callback = call_back(customer)
    await deliver(router, callback)
    ticket = await router.ticket(callback.follow_up_id)
    assert ticket["category"] == "follow_up"
    assert ticket["segment"] == "key_account"
    assert ticket["queue_id"] == "vip"


async def test_a_call_back_in_the_fetch_of_its_segment_change_comes_after_it(
    router: Router,
) -> None:
    """Feedback publishes the account's segment before its first call-back, in the customer's
    partition; one fetch holding both stores the segment first."""
    made, removed = uuid.uuid4(), uuid.uuid4()
    first, second = call_back(made), call_back(removed)
    await deliver_fetch(
        router,
        changed(made, 1, "key_account"),
        first,
        changed(removed, 1, "key_account"),
        changed(removed, 2, None),
        second,
    )
    assert (await router.ticket(first.follow_up_id))["queue_id"] == "vip"
    assert (await router.ticket(second.follow_up_id))["segment"] is None
