"""The conversation's pure rules: mentions, canned-response placeholders, delivery states,
reply windows, the text limits, what a contact's sender and attachments are, what a reply
publishes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccshared.events.payloads import ContactReceived, CustomerHints, SlaEscalated
from router.domain import notifications
from router.domain.conversation import (
    ConversationRules,
    TextRefused,
    checked_text,
    contact_attachments,
    contact_sender,
    mentions,
    next_delivery_state,
    outbound,
    render,
    reply_message,
    reply_window_closed,
    ticket_number,
    unknown_placeholders,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

# --- mentions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@amy please look", ["amy"]),
        ("thanks @amy.", ["amy"]),  # sentence punctuation is not part of the id
        ("请@bob看一下，谢谢", ["bob"]),  # after a Chinese character
        ("@amy @bob and @amy again", ["amy", "bob"]),  # each once, in order
        ("cc @li.wei-2: done", ["li.wei-2"]),
        ("write to amy@shop.example", []),  # an e-mail address mentions nobody
        ("@@amy", []),
        ("no mention here", []),
        ("(@dan)", ["dan"]),
    ],
)
def test_a_note_mentions_the_agent_ids_after_an_at_sign(text: str, expected: list[str]) -> None:
    assert mentions(text) == expected


def test_a_mention_is_cut_to_the_longest_agent_id() -> None:
    assert mentions("@" + "a" * 100) == ["a" * 64]


# --- canned responses -----------------------------------------------------------------------


def test_placeholders_are_filled_in_and_others_left_as_written() -> None:
    body = "Dear {customer_name}, ticket {ticket_number}: {agent_name} here. {unknown} {}"
    values = {"customer_name": "Maria", "ticket_number": "AB12CD34", "agent_name": "Amy"}
    assert render(body, values) == "Dear Maria, ticket AB12CD34: Amy here. {unknown} {}"


def test_a_name_nobody_gave_reads_customer_in_the_responses_language() -> None:
    assert render("{customer_name}您好", {"customer_name": None}, "zh") == "客户您好"
    assert render("Dear {customer_name}", {}, "en") == "Dear customer"


def test_unknown_placeholders_are_named_for_the_supervisor() -> None:
    assert unknown_placeholders("Hi {customer_name} {order_id} {name}") == ["name", "order_id"]
    assert unknown_placeholders("{customer_name}{ticket_number}{agent_name}") == []


def test_a_ticket_number_is_the_ids_first_eight_hex_digits() -> None:
    assert ticket_number(uuid.UUID("0f1e2d3c-0000-4000-8000-000000000000")) == "0F1E2D3C"


# --- delivery states ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "reported", "stored"),
    [
        ("queued", "sent", "sent"),
        ("sent", "delivered", "delivered"),
        ("delivered", "read", "read"),
        ("queued", "delivered", "delivered"),  # a step not heard of is skipped over
        ("delivered", "sent", None),  # late: never backwards
        ("read", "delivered", None),
        ("sent", "sent", None),  # the same again (a redelivered event)
        ("sent", "failed", "failed"),
        ("queued", "failed", "failed"),
        ("delivered", "failed", None),  # too late to fail
        ("failed", "sent", None),  # failed is final
        ("failed", "failed", None),
        (None, "sent", "sent"),
    ],
)
def test_a_delivery_state_only_moves_forward(
    current: str | None, reported: Any, stored: str | None
) -> None:
    assert next_delivery_state(current, reported) == stored


STATES = st.sampled_from(["queued", "sent", "delivered", "read", "failed"])


@given(st.lists(STATES, max_size=12))
def test_any_order_of_reports_ends_in_a_state_reached_without_going_back(
    reports: list[Any],
) -> None:
    order = {"queued": 0, "sent": 1, "failed": 2, "delivered": 2, "read": 3}
    state: Any = "queued"
    for reported in reports:
        after = next_delivery_state(state, reported)
        if after is not None:
            assert order[after] >= order[state]
            assert state != "failed"
            # the same report again changes nothing (a redelivered event is idempotent)
            assert next_delivery_state(after, reported) is None
            state = after


# --- reply windows and limits ---------------------------------------------------------------


def test_a_reply_window_closes_its_hours_after_the_customers_last_message() -> None:
    windows = {"social": 24.0}
    assert reply_window_closed(windows, "social", NOW - timedelta(hours=23), NOW) is None
    closed = reply_window_closed(windows, "social", NOW - timedelta(hours=25), NOW)
    assert closed == timedelta(hours=1)
    assert reply_window_closed(windows, "email", NOW - timedelta(days=30), NOW) is None
    assert reply_window_closed(windows, "social", None, NOW) is None


def test_text_is_refused_when_blank_or_over_the_limit_in_utf8_bytes() -> None:
    rules = ConversationRules(max_bytes=9)
    assert checked_text("退款了", rules) == "退款了"  # 9 bytes
    with pytest.raises(TextRefused) as too_large:
        checked_text("退款了吗", rules)  # 12 bytes, 4 characters
    assert too_large.value.too_large
    with pytest.raises(TextRefused) as blank:
        checked_text(" \n\t", rules)
    assert not blank.value.too_large


# --- contacts and replies -------------------------------------------------------------------


def _contact(**overrides: Any) -> ContactReceived:
    values: dict[str, Any] = {
        "contact_id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "channel": "email",
        "external_id": "x",
        "received_at": NOW,
        **overrides,
    }
    return ContactReceived(**values)


def test_a_contacts_sender_and_attachment_metadata_are_kept_but_not_their_content() -> None:
    contact = _contact(
        customer=CustomerHints(name="Maria", account_id="acct-1"),
        channel_data={
            "from": {"name": "Maria", "address": "maria@example.com"},
            "attachments": [
                {
                    "filename": "发票.pdf",
                    "content_type": "application/pdf",
                    "size_bytes": 10,
                    "content": "SECRET",
                },
                "not an attachment",
            ],
        },
    )
    assert contact_sender(contact) == {"name": "Maria", "email": "maria@example.com"}
    assert contact_attachments(contact) == [
        {"filename": "发票.pdf", "content_type": "application/pdf", "size_bytes": 10}
    ]
    assert contact_sender(_contact()) is None
    assert contact_attachments(_contact()) is None


def test_a_reply_on_the_phone_channel_is_a_call_back_request() -> None:
    ticket_id, customer = uuid.uuid4(), uuid.uuid4()
    for channel, kind in (("phone", "callback_request"), ("email", "reply"), ("chat", "reply")):
        message = reply_message(
            uuid.uuid4(),
            ticket_id,
            author="agent:amy",
            channel=channel,  # type: ignore[arg-type]
            text="我们会回电 / we will call back",
            at=NOW,
            canned_response_id=None,
            reply_to_contact_id=None,
        )
        assert message.kind == kind
        assert message.delivery_state == "queued"
        published = outbound(message, customer_id=customer, subject="Refund", language="zh")
        assert published.kind == kind
        assert published.text == "我们会回电 / we will call back"
        assert published.subject == ("Re: Refund" if channel == "email" else None)


# --- notifications --------------------------------------------------------------------------


def test_an_escalation_tells_the_queues_supervisors_and_managers_each_once() -> None:
    escalated = SlaEscalated(
        ticket_id=uuid.uuid4(),
        metric="first_response",
        level=2,
        actions=["notify_supervisor", "notify_manager"],
        at=NOW,
    )
    staff = notifications.QueueStaff(supervisors=("lin", "mo"), managers=("mo", "zoe"))
    told = notifications.escalation(escalated.ticket_id, "vip", escalated, staff)
    assert [n.recipient for n in told] == ["lin", "mo", "zoe"]
    assert {n.kind for n in told} == {"escalation"}
    only_sup = escalated.model_copy(update={"actions": ["notify_supervisor"]})
    told = notifications.escalation(escalated.ticket_id, "vip", only_sup, staff)
    assert [n.recipient for n in told] == ["lin", "mo"]
    none = escalated.model_copy(update={"actions": ["raise_priority"]})
    assert notifications.escalation(escalated.ticket_id, "vip", none, staff) == []


def test_a_failed_delivery_without_an_owner_tells_nobody() -> None:
    assert notifications.delivery_failed(None, uuid.uuid4(), uuid.uuid4(), "550", NOW) == []
    (told,) = notifications.delivery_failed("amy", uuid.uuid4(), uuid.uuid4(), "550", NOW)
    assert told.event().recipient_id == "amy"
