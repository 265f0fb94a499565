"""Contacts become tickets: threading, classification, routing into queues, the lifecycle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ccshared.events import new_event
from ccshared.events.payloads import CustomerSegmentChanged
from router.consumers.feedback import from_feedback
from tests.integration.router.conftest import Router, contact


async def test_chinese_complaint_opens_a_ticket_in_the_complaints_queue_with_its_reason(
    router: Router,
) -> None:
    customer = uuid.uuid4()
    ticket_id = await router.receive(
        contact(customer, channel="phone", text_="洗衣机一直漏水，已经打了三次电话了，我要投诉！")
    )
    ticket = await router.ticket(ticket_id)
    assert ticket["status"] == "queued"
    assert ticket["category"] == "complaint"
    assert ticket["queue_id"] == "complaints"
    assert ticket["classification"]["category_rule"]
    assert any("投诉" in m["reason"] for m in ticket["classification"]["matched_rules"])
    assert [h["action"] for h in ticket["history"]] == ["open", "queue"]
    assert ticket["policy_version"] == 1


async def test_email_reply_in_the_same_thread_joins_the_ticket(router: Router) -> None:
    customer = uuid.uuid4()
    first = await router.receive(
        contact(
            customer,
            channel="email",
            text_="Refund for order 88231 please",
            thread={"email_message_id": "<a1@mail.example.com>"},
        )
    )
    reply = await router.receive(
        contact(
            customer,
            channel="email",
            text_="Any update?",
            thread={
                "email_message_id": "<a2@mail.example.com>",
                "email_in_reply_to": "<reply-1@shop.example>",
                "email_references": ["<a1@mail.example.com>", "<reply-1@shop.example>"],
            },
        )
    )
    assert reply == first
    assert len((await router.ticket(first))["contacts"]) == 2


async def test_chat_messages_of_one_session_and_social_replies_join_their_ticket(
    router: Router,
) -> None:
    customer = uuid.uuid4()
    chat = await router.receive(contact(customer, thread={"chat_session_id": "s-44a1"}))
    again = await router.receive(
        contact(customer, text_="还有，我的账号登录不上了", thread={"chat_session_id": "s-44a1"})
    )
    assert again == chat
    post = await router.receive(
        contact(
            customer,
            channel="social",
            text_="app down, cannot pay",
            thread={"social_platform": "x", "social_post_id": "100"},
        )
    )
    reply = await router.receive(
        contact(
            customer,
            channel="social",
            text_="still down",
            thread={
                "social_platform": "x",
                "social_post_id": "101",
                "social_parent_post_id": "100",
            },
        )
    )
    assert reply == post
    assert post != chat


async def test_same_customer_same_channel_joins_but_another_customer_never_does(
    router: Router,
) -> None:
    maria, mallory = uuid.uuid4(), uuid.uuid4()
    first = await router.receive(contact(maria, channel="phone", text_="my order is late"))
    second = await router.receive(contact(maria, channel="phone", text_="calling again"))
    assert second == first
    # A forged reference to Maria's thread does not attach Mallory's contact to her ticket.
    await router.receive(contact(maria, channel="email", thread={"email_message_id": "<m@x>"}))
    forged = await router.receive(
        contact(
            mallory,
            channel="email",
            thread={"email_message_id": "<z@x>", "email_in_reply_to": "<m@x>"},
        )
    )
    assert (await router.ticket(forged))["customer_id"] == str(mallory)


async def test_contacts_arriving_back_to_back_thread_onto_one_ticket(router: Router) -> None:
    customer = uuid.uuid4()
    tickets = [
        await router.receive(contact(customer, thread={"chat_session_id": "burst"}))
        for _ in range(5)
    ]
    assert len(set(tickets)) == 1


async def test_key_account_customer_goes_to_vip_care(router: Router) -> None:
    """A key account as feedback's registry says (customer.segment_changed), not as the
    contact's account id claims (tests/integration/router/test_customer_segments.py)."""
    customer = uuid.uuid4()
    segment = CustomerSegmentChanged(
        customer_id=customer,
        segment="key_account",
        version=1,
        source="feedback.key_accounts",
        at=datetime.now(UTC),
    )
    async with router.runtime.engine.begin() as conn:
        await from_feedback(router.runtime)(conn, new_event(segment, producer="t"), segment)
    ticket_id = await router.receive(
        contact(
            customer,
            channel="phone",
            text_="Payment terminals in all 40 stores are offline. Urgent.",
        )
    )
    ticket = await router.ticket(ticket_id)
    assert ticket["segment"] == "key_account"
    assert ticket["queue_id"] == "vip"
    assert ticket["priority"] == "urgent"
