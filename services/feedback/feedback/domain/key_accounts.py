"""Key accounts as a customer segment: the registry is the one source of who is a key account;
every change of an account publishes the segment the customer now has (`customer.segment_changed`),
for the router (routing) and SLA (policy matching)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from ccshared.events.payloads import CustomerSegmentChanged

KEY_ACCOUNT: Final = "key_account"
SOURCE: Final = "feedback.key_accounts"


def segment_of(active: bool | None) -> str | None:
    """An active key account's segment; None for an inactive or removed one (`active` None)."""
    return KEY_ACCOUNT if active else None


def segment_changed(
    customer_id: uuid.UUID, active: bool | None, version: int, at: datetime
) -> CustomerSegmentChanged:
    return CustomerSegmentChanged(
        customer_id=customer_id,
        segment=segment_of(active),
        version=version,
        source=SOURCE,
        at=at,
    )
