"""A repeated contact about the same problem, known from the customer's tickets rather than
from the text: a new ticket of the same category while another is open (or was resolved in
the last seven days) opens at least high, the earlier ticket named as the reason."""

from __future__ import annotations

import uuid

from tests.integration.router.conftest import Router, contact

QUESTION = "你们的发票系统怎么用？"  # a plain question: normal priority, no urgency signal


async def test_a_second_contact_on_another_channel_about_the_same_problem_opens_high(
    router: Router,
) -> None:
    customer = uuid.uuid4()
    first_id = await router.receive(contact(customer, channel="email", text_=QUESTION))
    first = await router.ticket(first_id)
    assert first["priority"] == "normal"
    assert first["classification"]["signals"] == []

    second_id = await router.receive(contact(customer, channel="chat", text_=QUESTION))
    assert second_id != first_id  # another channel: a new ticket, not a join
    second = await router.ticket(second_id)
    assert second["category"] == first["category"]
    assert second["priority"] == "high"
    c = second["classification"]
    assert c["priority_source"] == "signal:repeated"
    assert [s["kind"] for s in c["signals"]] == ["repeated"]
    assert any(str(first_id)[:8] in r and "still open" in r for r in c["priority_reasons"])


async def test_another_customers_ticket_or_another_problem_does_not_count(router: Router) -> None:
    await router.receive(contact(uuid.uuid4(), channel="email", text_=QUESTION))
    other = await router.ticket(
        await router.receive(contact(uuid.uuid4(), channel="chat", text_=QUESTION))
    )
    assert other["priority"] == "normal"  # someone else's open ticket

    customer = uuid.uuid4()
    await router.receive(
        contact(customer, channel="email", text_="the lady who sorted my return was a star")
    )
    mine = await router.ticket(
        await router.receive(contact(customer, channel="chat", text_=QUESTION))
    )
    assert mine["priority"] == "normal"  # a ticket of another category
    assert mine["classification"]["signals"] == []
