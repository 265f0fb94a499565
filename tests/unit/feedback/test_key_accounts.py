"""The key-account registry's segment of a customer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from feedback.domain.key_accounts import segment_changed, segment_of


def test_only_an_active_key_account_has_the_key_account_segment() -> None:
    assert segment_of(True) == "key_account"
    assert segment_of(False) is None
    assert segment_of(None) is None  # removed


def test_the_event_names_its_source_and_version() -> None:
    customer = uuid.uuid4()
    event = segment_changed(customer, True, 3, datetime(2026, 12, 3, tzinfo=UTC))
    assert (event.customer_id, event.segment, event.version) == (customer, "key_account", 3)
    assert event.source == "feedback.key_accounts"
