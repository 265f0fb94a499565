"""The router's copy of customers' segments (`customer_segments`, from feedback's key-account
registry): a fetch of changes written in one statement, only forward; read per batch of
contacts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from router.domain.segments import RegisteredSegment

# A version not above the stored one (an older event delivered late, a redelivery) changes
# nothing. Rows are written in customer id order, so two batches wait rather than deadlock.
_SET_SEGMENTS = text(
    "INSERT INTO customer_segments (customer_id, segment, source, version, updated_at) "
    "SELECT u.id, u.segment, u.source, u.version, now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:segments AS text[]), CAST(:sources AS text[]), "
    "  CAST(:versions AS bigint[])) AS u(id, segment, source, version) "
    "ORDER BY u.id "
    "ON CONFLICT (customer_id) DO UPDATE SET segment = EXCLUDED.segment, "
    "  source = EXCLUDED.source, version = EXCLUDED.version, updated_at = now() "
    "WHERE customer_segments.version < EXCLUDED.version"
)


async def set_customer_segments(
    conn: AsyncConnection, segments: dict[uuid.UUID, RegisteredSegment]
) -> None:
    """Store each customer's segment (or none) with its version, moving only forward. One
    per customer: the caller keeps the latest of a fetch."""
    if not segments:
        return
    ids = sorted(segments)
    await conn.execute(
        _SET_SEGMENTS,
        {
            "ids": ids,
            "segments": [segments[i].segment for i in ids],
            "sources": [segments[i].source for i in ids],
            "versions": [segments[i].version for i in ids],
        },
    )


async def segments_of(
    conn: AsyncConnection, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The customers' registered segments (those with one), one query."""
    if not customer_ids:
        return {}
    rows = await conn.execute(
        text(
            "SELECT customer_id, segment FROM customer_segments "
            "WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND segment IS NOT NULL"
        ),
        {"ids": list(customer_ids)},
    )
    return {r.customer_id: r.segment for r in rows}
