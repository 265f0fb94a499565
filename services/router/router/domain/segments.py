"""Customers' segments as their owner says them (feedback's key-account registry, by
`customer.segment_changed`), and the segment a ticket is routed with."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ccshared.events.payloads import CustomerSegmentChanged

# Segments only their owner's registry grants: an integration saying so is not believed.
REGISTRY_SEGMENTS: Final = frozenset({"key_account"})


@dataclass(frozen=True, slots=True)
class RegisteredSegment:
    """A customer's segment (None: none, e.g. a key account deactivated) at `version`."""

    segment: str | None
    source: str
    version: int


def latest_segments(
    changes: Iterable[CustomerSegmentChanged],
) -> dict[uuid.UUID, RegisteredSegment]:
    """Each customer's segment from a fetch of events: the highest version of each customer
    wins, whatever order the events came in."""
    latest: dict[uuid.UUID, RegisteredSegment] = {}
    for change in changes:
        known = latest.get(change.customer_id)
        if known is None or change.version > known.version:
            latest[change.customer_id] = RegisteredSegment(
                change.segment, change.source, change.version
            )
    return latest


def ticket_segment(registered: str | None, metadata: Mapping[str, Any]) -> str | None:
    """The segment a ticket is classified and routed with: the registry's, when it names one;
    else the integration's `metadata.segment`, unless that claims a segment only the registry
    grants (`key_account`). An integration's `customer.account_id` plays no part: anyone can
    send one."""
    if registered:
        return registered
    stated = metadata.get("segment")
    if isinstance(stated, str) and stated and stated not in REGISTRY_SEGMENTS:
        return stated
    return None
