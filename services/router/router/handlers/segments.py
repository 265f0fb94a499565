"""Customers' segments of a fetch of `customer.segment_changed`: the latest version of each
customer stored, one statement; tickets opened from then on are routed with it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import CustomerSegmentChanged
from router.db.segments import set_customer_segments
from router.domain.segments import latest_segments


async def apply_segments(conn: AsyncConnection, changes: Sequence[CustomerSegmentChanged]) -> None:
    """An older version than the one stored (delivered late) changes nothing."""
    await set_customer_segments(conn, latest_segments(changes))
