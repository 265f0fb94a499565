"""Customer rows: the view contacts build (`record_sightings`, one statement a batch), reading
one customer and searching them (an agent only customers of tickets they may read), and a
merge (both customers locked in id order, tickets and identities moved, in one statement)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events import new_event
from ccshared.events.payloads import CustomerMerged
from ccshared.logging import correlation_id
from ccshared.outbox import enqueue
from router.db.tickets import READABLE_BY_AGENT
from router.domain.customers import CustomerQuery, CustomerSighting, CustomerState, MergePlan
from router.domain.tickets import ROUTER

_MERGED_TARGETS = text(
    "SELECT id, merged_into FROM customers WHERE id = ANY(:ids) AND merged_into IS NOT NULL"
)


async def merged_targets(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The customer each of these merged customers now is (a merged customer's `merged_into`
    always names one that is not merged)."""
    rows = await conn.execute(_MERGED_TARGETS, {"ids": list(ids)})
    return {row.id: row.merged_into for row in rows}


# The batch's customers upserted in id order (so their row locks are taken in that order, as a
# merge takes them), a merged one left as it is (and not returned), then the identities of the
# customers that were written.
_RECORD = text(
    "WITH seen AS ("
    " INSERT INTO customers AS c (id, display_name, name_at, first_contact_at, last_contact_at,"
    "  contact_count)"
    " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]),"
    "  CAST(:name_ats AS timestamptz[]), CAST(:firsts AS timestamptz[]),"
    "  CAST(:lasts AS timestamptz[]), CAST(:counts AS int[])) ORDER BY 1"
    " ON CONFLICT (id) DO UPDATE SET"
    "  display_name = CASE WHEN excluded.display_name IS NOT NULL AND (c.name_at IS NULL"
    "   OR excluded.name_at >= c.name_at) THEN excluded.display_name ELSE c.display_name END,"
    "  name_at = CASE WHEN excluded.display_name IS NOT NULL AND (c.name_at IS NULL"
    "   OR excluded.name_at >= c.name_at) THEN excluded.name_at ELSE c.name_at END,"
    "  first_contact_at = least(c.first_contact_at, excluded.first_contact_at),"
    "  last_contact_at = greatest(c.last_contact_at, excluded.last_contact_at),"
    "  contact_count = c.contact_count + excluded.contact_count, updated_at = now()"
    " WHERE c.merged_into IS NULL"
    " RETURNING id"
    "), identities AS ("
    " INSERT INTO customer_identities AS i (kind, value, customer_id, first_seen_at)"
    " SELECT u.kind, u.value, u.customer_id, u.at FROM unnest(CAST(:i_kinds AS text[]),"
    "  CAST(:i_values AS text[]), CAST(:i_customers AS uuid[]), CAST(:i_ats AS timestamptz[]))"
    "  AS u(kind, value, customer_id, at)"
    " WHERE u.customer_id IN (SELECT id FROM seen)"
    " ON CONFLICT (kind, value, customer_id) DO UPDATE"
    "  SET first_seen_at = least(i.first_seen_at, excluded.first_seen_at)"
    "  WHERE excluded.first_seen_at < i.first_seen_at"
    ") SELECT id FROM seen"
)


async def record_sightings(
    conn: AsyncConnection, seen: Sequence[CustomerSighting]
) -> set[uuid.UUID]:
    """Add a batch's sightings (in customer id order) to the customers' views; returns the
    customers written: one missing was merged meanwhile (its row is locked now, so
    `merged_targets` sees where it went)."""
    if not seen:
        return set()
    identities = [
        (kind, value, s.customer_id, at) for s in seen for (kind, value), at in s.identities.items()
    ]
    rows = await conn.execute(
        _RECORD,
        {
            "ids": [s.customer_id for s in seen],
            "names": [s.name for s in seen],
            "name_ats": [s.name_at for s in seen],
            "firsts": [s.first_contact_at for s in seen],
            "lasts": [s.last_contact_at for s in seen],
            "counts": [s.contacts for s in seen],
            "i_kinds": [i[0] for i in identities],
            "i_values": [i[1] for i in identities],
            "i_customers": [i[2] for i in identities],
            "i_ats": [i[3] for i in identities],
        },
    )
    return {row.id for row in rows}


# A customer the router opens a ticket for without their contact (a follow-up feedback asked
# for): known from then on (no contact counted), or, if merged, the one it became.
_KNOWN = text(
    "WITH added AS ("
    " INSERT INTO customers (id, first_contact_at, last_contact_at, contact_count)"
    " VALUES (:id, :at, :at, 0) ON CONFLICT (id) DO NOTHING"
    ") SELECT coalesce((SELECT merged_into FROM customers WHERE id = :id), :id)"
)


async def known_customer(conn: AsyncConnection, customer_id: uuid.UUID, at: datetime) -> Any:
    """The customer (added if the router never saw them), or the one a merged one became."""
    return (await conn.execute(_KNOWN, {"id": customer_id, "at": at})).scalar_one()


# --- reading ------------------------------------------------------------------------------

_CUSTOMER_COLUMNS = (
    "c.id, c.display_name, c.name_at, c.first_contact_at, c.last_contact_at, c.contact_count, "
    "c.merged_into, c.merged_at, s.segment"
)
_GET = text(
    f"SELECT {_CUSTOMER_COLUMNS} FROM customers c "  # noqa: S608 - fixed column names
    "LEFT JOIN customer_segments s ON s.customer_id = c.id WHERE c.id = :id"
)
# An agent reads a customer of a ticket they may read.
_AGENT_READS = (
    "EXISTS (SELECT 1 FROM tickets WHERE tickets.customer_id = c.id AND "  # noqa: S608
    + READABLE_BY_AGENT
    + ")"
)
_AGENT_MAY_READ = text(
    "SELECT " + _AGENT_READS + " FROM customers c WHERE c.id = :id"  # noqa: S608
)
MAX_IDENTITIES = 100
_IDENTITIES = text(
    "SELECT kind, value FROM customer_identities WHERE customer_id = :id "
    "ORDER BY kind, first_seen_at, value LIMIT :limit"
)


async def get_customer(conn: AsyncConnection, customer_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await conn.execute(_GET, {"id": customer_id})).mappings().first()
    return None if row is None else dict(row)


async def agent_may_read_customer(
    conn: AsyncConnection, customer_id: uuid.UUID, agent_id: str
) -> bool:
    """Whether some ticket of the customer is one the agent may read (READABLE_BY_AGENT)."""
    found = await conn.execute(_AGENT_MAY_READ, {"id": customer_id, "reader": agent_id})
    return bool(found.scalar())


async def identities_of(conn: AsyncConnection, customer_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await conn.execute(_IDENTITIES, {"id": customer_id, "limit": MAX_IDENTITIES})
    return [(row.kind, row.value) for row in rows]


async def last_contacts(
    conn: AsyncConnection, customer_id: uuid.UUID, *, limit: int, reader: str | None
) -> list[dict[str, Any]]:
    """The customer's latest contacts, newest first; a `reader` (an agent) gets only those of
    tickets they may read. The text is cut to its first 4,000 characters (a preview)."""
    readable = f" AND {READABLE_BY_AGENT}" if reader else ""
    rows = await conn.execute(
        text(
            "SELECT tc.contact_id, tc.ticket_id, tc.channel, tc.received_at, tc.subject, "  # noqa: S608
            "left(tc.text, 4000) AS text FROM tickets "
            "JOIN ticket_contacts tc ON tc.ticket_id = tickets.id "
            f"WHERE tickets.customer_id = :id{readable} "
            "ORDER BY tc.received_at DESC, tc.contact_id LIMIT :limit"
        ),
        {"id": customer_id, "limit": limit, "reader": reader},
    )
    return [dict(row._mapping) for row in rows]


def _search_sql(query: CustomerQuery, agent: bool, after: bool) -> str:
    where = ["c.merged_into IS NULL"]
    if query.kind == "name":
        where.append("lower(c.display_name) LIKE :pattern ESCAPE '\\'")
    else:
        where.append(
            "c.id IN (SELECT customer_id FROM customer_identities WHERE kind = :kind "
            "AND value = :value)"
        )
    if agent:
        where.append(_AGENT_READS)
    if after:
        where.append("(c.last_contact_at, c.id) < (:at, :last)")
    return (
        f"SELECT {_CUSTOMER_COLUMNS}, "  # noqa: S608 - fixed SQL, values are parameters
        "(SELECT coalesce(array_agg(i.kind || ' ' || i.value ORDER BY i.kind, i.first_seen_at),"
        " '{}') FROM (SELECT kind, value, first_seen_at FROM customer_identities"
        " WHERE customer_id = c.id ORDER BY kind, first_seen_at LIMIT :max_identities) i)"
        " AS identities "
        "FROM customers c LEFT JOIN customer_segments s ON s.customer_id = c.id "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY c.last_contact_at DESC, c.id DESC LIMIT :limit"
    )


async def search_customers(
    conn: AsyncConnection,
    query: CustomerQuery,
    *,
    pattern: str,
    limit: int,
    reader: str | None,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """Customers matching the query (not merged ones), most recently in contact first, up to
    `limit`, after the keyset `after`; a `reader` (an agent) gets only customers of tickets
    they may read, filtered in the query (pages stay full)."""
    params: dict[str, Any] = {
        "kind": query.kind,
        "value": query.value,
        "pattern": pattern,
        "limit": limit,
        "reader": reader,
        "max_identities": MAX_IDENTITIES,
    }
    if after is not None:
        params.update(at=after[0], last=after[1])
    sql = _search_sql(query, reader is not None, after is not None)
    rows = await conn.execute(text(sql), params)
    found = []
    for row in rows.mappings():
        item = dict(row)
        item["identities"] = [tuple(i.split(" ", 1)) for i in item["identities"]]
        found.append(item)
    return found


# --- merging ------------------------------------------------------------------------------

_LOCK_PAIR = text(
    "SELECT id, display_name, name_at, first_contact_at, last_contact_at, contact_count, "
    "merged_into FROM customers WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
)


async def lock_customers(
    conn: AsyncConnection, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CustomerState]:
    """The customers of these ids that exist, locked in id order (two merges of overlapping
    customers, or a merge and a contact batch, never wait on each other in a cycle)."""
    rows = await conn.execute(_LOCK_PAIR, {"ids": sorted(set(ids))})
    return {row.id: CustomerState(**row._mapping) for row in rows}


# Everything of a merge but its event, in one statement: the source's tickets move (each with
# a history row), its identities go to the target (kept once if both had one), customers
# merged into it earlier now name the target, the source is marked merged and the target's
# view is the plan's.
_MERGE = text(
    "WITH moved AS ("
    " UPDATE tickets SET customer_id = :target, updated_at = now()"
    " WHERE customer_id = :source RETURNING id"
    "), history AS ("
    " INSERT INTO ticket_history (ticket_id, at, actor, action, reason, data)"
    " SELECT id, CAST(:at AS timestamptz), :actor, 'customer_merged', :reason,"
    "  jsonb_build_object('from_customer_id', CAST(:source_text AS text),"
    "                     'to_customer_id', CAST(:target_text AS text)) FROM moved"
    "), copied AS ("
    " INSERT INTO customer_identities AS i (kind, value, customer_id, first_seen_at)"
    " SELECT kind, value, CAST(:target AS uuid), first_seen_at FROM customer_identities"
    " WHERE customer_id = :source"
    " ON CONFLICT (kind, value, customer_id) DO UPDATE"
    "  SET first_seen_at = least(i.first_seen_at, excluded.first_seen_at)"
    "), dropped AS ("
    " DELETE FROM customer_identities WHERE customer_id = :source"
    "), earlier AS ("
    " UPDATE customers SET merged_into = :target, updated_at = now() WHERE merged_into = :source"
    "), gone AS ("
    " UPDATE customers SET merged_into = :target, merged_at = :at, merged_by = :actor,"
    "  updated_at = now() WHERE id = :source"
    "), kept AS ("
    " UPDATE customers SET display_name = :name, name_at = :name_at, first_contact_at = :first,"
    "  last_contact_at = :last, contact_count = :count, updated_at = now() WHERE id = :target"
    ") SELECT id FROM moved ORDER BY id"
)


async def merge_customers(
    conn: AsyncConnection, plan: MergePlan, *, actor: str, at: datetime
) -> list[uuid.UUID]:
    """Write the merge (both customers locked by `lock_customers` first); the moved tickets."""
    rows = await conn.execute(
        _MERGE,
        {
            "source": plan.source,
            "target": plan.target,
            "source_text": str(plan.source),
            "target_text": str(plan.target),
            "at": at,
            "actor": actor,
            "reason": f"customer {plan.source} merged into {plan.target}",
            "name": plan.display_name,
            "name_at": plan.name_at,
            "first": plan.first_contact_at,
            "last": plan.last_contact_at,
            "count": plan.contact_count,
        },
    )
    return [row.id for row in rows]


async def announce(conn: AsyncConnection, event: CustomerMerged) -> None:
    """The merge's event, in the merge's transaction (the outbox)."""
    await enqueue(conn, new_event(event, producer=ROUTER, correlation_id=correlation_id.get()))
