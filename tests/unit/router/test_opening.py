"""A contact becoming a new ticket (`router.domain.opening`): classified, routed, queued."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from ccshared.events.payloads import (
    ContactReceived,
    CustomerHints,
    TicketOpened,
    TicketRouted,
    TicketStatusChanged,
)
from router.domain.classification import DEFAULT_RULES, ClassificationRule
from router.domain.opening import Placement, new_ticket
from router.domain.policy import DEFAULT_POLICY


@dataclass(frozen=True)
class Rules:
    version: int
    rules: tuple[ClassificationRule, ...]


DEFAULT_RULE_SET = Rules(1, DEFAULT_RULES)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def contact(text: str, **metadata: str) -> ContactReceived:
    return ContactReceived(
        contact_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        channel="email",
        external_id="x",
        received_at=NOW,
        text=text,
        customer=CustomerHints(),
        metadata=dict(metadata),
    )


def test_a_complaint_opens_a_queued_ticket_in_the_complaints_queue_with_its_events() -> None:
    opened = new_ticket(contact("我要投诉，客服太差了"), DEFAULT_POLICY, DEFAULT_RULE_SET, NOW)
    assert (opened.category, opened.queue_id, opened.policy_step) == (
        "complaint",
        "complaints",
        "complaints",
    )
    assert opened.step_timeout_at is not None
    assert opened.step_timeout_at > NOW
    assert [h.action for h in opened.history] == ["open", "queue"]
    assert [type(e) for e in opened.events] == [TicketOpened, TicketStatusChanged, TicketRouted]
    assert opened.classification["rules_version"] == DEFAULT_RULE_SET.version


def test_a_follow_up_is_placed_in_the_earlier_queue_with_its_owner_and_never_overflows() -> None:
    earlier = uuid.uuid4()
    placement = Placement(
        ticket_id=uuid.uuid4(),
        follow_up_of=earlier,
        category="follow_up",
        owner_agent_id="amy",
        queue_id="billing",
    )
    opened = new_ticket(contact("hello"), DEFAULT_POLICY, DEFAULT_RULE_SET, NOW, placement)
    assert opened.id == placement.ticket_id
    assert (opened.category, opened.queue_id, opened.owner_agent_id) == (
        "follow_up",
        "billing",
        "amy",
    )
    assert opened.step_timeout_at is None
    assert opened.follow_up_of == earlier
    routed = opened.events[2]
    assert isinstance(routed, TicketRouted)
    assert routed.reason == "follow-up in the earlier ticket's queue billing"
