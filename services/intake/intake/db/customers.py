"""Customers merged by a supervisor (customer.merged from the router): the merged customer's
identities go to the one it became, so new contacts from them get that customer's id."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# One statement: both customers exist here (intake created them; a row is added if not, so an
# event about customers this database never saw still applies), the merged one names the
# target, customers merged into it earlier now name the target too, and its identities move.
# Identities are keyed by (kind, value) alone, so a move never collides.
_MERGE = text(
    "WITH target AS ("
    " INSERT INTO customers (id) VALUES (:target) ON CONFLICT (id) DO NOTHING"
    "), source AS ("
    " INSERT INTO customers (id, merged_into, merged_at) VALUES (:source, :target, :at)"
    " ON CONFLICT (id) DO UPDATE SET merged_into = excluded.merged_into,"
    "  merged_at = excluded.merged_at, updated_at = now()"
    "), earlier AS ("
    " UPDATE customers SET merged_into = :target, updated_at = now()"
    " WHERE merged_into = :source AND id <> :source"
    "), moved AS ("
    " UPDATE customer_identities SET customer_id = :target WHERE customer_id = :source"
    " RETURNING kind, value"
    ") SELECT kind, value FROM moved"
)


# Merges of different targets are keyed differently, so they may arrive in any order: a target
# merged already (B into C read before A into B) stands for the customer it became.
_CURRENT = text("SELECT coalesce((SELECT merged_into FROM customers WHERE id = :id), :id)")


async def merge_customer(
    conn: AsyncConnection, source: uuid.UUID, target: uuid.UUID, at: datetime
) -> list[tuple[str, str]]:
    """Point `source` and its identities at `target` (or at the customer `target` was merged
    into); returns the identities moved."""
    current = (await conn.execute(_CURRENT, {"id": target})).scalar_one()
    rows = await conn.execute(_MERGE, {"source": source, "target": current, "at": at})
    return [(row.kind, row.value) for row in rows]
