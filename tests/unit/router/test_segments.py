"""A ticket's segment: the key-account registry's, never an integration's claim."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ccshared.events.payloads import ContactReceived, CustomerHints, CustomerSegmentChanged
from router.db.rules import DEFAULT_RULE_SET
from router.domain.opening import new_ticket
from router.domain.policy import DEFAULT_POLICY
from router.domain.segments import RegisteredSegment, latest_segments, ticket_segment

NOW = datetime(2026, 12, 3, 10, tzinfo=UTC)
SOURCE = "feedback.key_accounts"


def changed(customer: uuid.UUID, version: int, segment: str | None) -> CustomerSegmentChanged:
    return CustomerSegmentChanged(
        customer_id=customer, segment=segment, version=version, source=SOURCE, at=NOW
    )


def test_the_highest_version_of_each_customer_wins_whatever_the_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [changed(a, 2, None), changed(a, 1, "key_account"), changed(b, 1, "key_account")]
    assert latest_segments(events) == {
        a: RegisteredSegment(None, SOURCE, 2),
        b: RegisteredSegment("key_account", SOURCE, 1),
    }


def test_the_registry_names_the_segment_and_an_integration_cannot_claim_a_key_account() -> None:
    assert ticket_segment("key_account", {}) == "key_account"
    assert ticket_segment("key_account", {"segment": "gold"}) == "key_account"
    assert ticket_segment(None, {"segment": "key_account"}) is None
    assert ticket_segment(None, {"segment": "gold"}) == "gold"
    assert ticket_segment(None, {"segment": 7}) is None
    assert ticket_segment(None, {}) is None


def contact(account_id: str | None) -> ContactReceived:
    return ContactReceived(
        contact_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        channel="phone",
        external_id="x",
        received_at=NOW,
        text="Please call me back",
        customer=CustomerHints(account_id=account_id),
    )


def test_an_account_id_alone_routes_no_ticket_to_vip_care() -> None:
    opened = new_ticket(contact("ACME-0042"), DEFAULT_POLICY, DEFAULT_RULE_SET, NOW)
    assert opened.segment is None
    assert opened.queue_id != "vip"


def test_a_registered_key_account_is_routed_to_vip_care() -> None:
    opened = new_ticket(
        contact(None), DEFAULT_POLICY, DEFAULT_RULE_SET, NOW, registered_segment="key_account"
    )
    assert opened.segment == "key_account"
    assert opened.queue_id == "vip"
    assert opened.events[0].segment == "key_account"  # type: ignore[attr-defined]
