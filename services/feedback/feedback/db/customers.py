"""Customers merged by a supervisor (customer.merged from the router): everything feedback
keeps per customer follows the merged customer to the one it became."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from feedback.db.facts import lock_customer
from feedback.db.key_accounts import publish_segment

# The merged customer's key account becomes the target's, unless the target has one: then the
# target's stays, its relationship dating from the earlier start and active if either was.
_KEY_ACCOUNT = text(
    "INSERT INTO key_accounts AS k (customer_id, name, relationship_started_at, channel,"
    " language, active, next_callback_at, created_at)"
    " SELECT :target, name, relationship_started_at, channel, language, active,"
    "  next_callback_at, created_at FROM key_accounts WHERE customer_id = :source"
    " ON CONFLICT (customer_id) DO UPDATE SET"
    "  relationship_started_at = least(k.relationship_started_at,"
    "   excluded.relationship_started_at),"
    "  active = k.active OR excluded.active, updated_at = now()"
)
# Call-backs already requested go with it, but one per scheduled time: the target's own wins.
_CALLBACKS = text(
    "UPDATE key_account_callbacks c SET customer_id = :target WHERE c.customer_id = :source"
    " AND NOT EXISTS (SELECT 1 FROM key_account_callbacks t"
    "  WHERE t.customer_id = :target AND t.due_at = c.due_at)"
)
_ACTIVE = text("SELECT active FROM key_accounts WHERE customer_id = :id")
_DROP_KEY_ACCOUNT = text("DELETE FROM key_accounts WHERE customer_id = :source")  # cascades
# Ticket facts (observed FCR), contacts (reply windows, observed FCR) and surveys (the quiet
# period between two surveys of one customer) in one statement.
_ROWS = text(
    "WITH facts AS ("
    " UPDATE ticket_facts SET customer_id = :target, updated_at = now()"
    " WHERE customer_id = :source RETURNING 1"
    "), contacts AS ("
    " UPDATE customer_contacts SET customer_id = :target WHERE customer_id = :source RETURNING 1"
    "), surveys AS ("
    " UPDATE surveys SET customer_id = :target WHERE customer_id = :source RETURNING 1"
    ") SELECT (SELECT count(*) FROM facts) AS facts, (SELECT count(*) FROM contacts) AS contacts,"
    " (SELECT count(*) FROM surveys) AS surveys"
)


# The customer a target became if it was merged itself (merges are keyed by target, so they
# may be read in any order), then the merge recorded and earlier merges into the source
# pointed at the target.
_CURRENT = text(
    "SELECT coalesce((SELECT merged_into FROM merged_customers WHERE customer_id = :id), :id)"
)
_RECORD = text(
    "WITH merged AS ("
    " INSERT INTO merged_customers (customer_id, merged_into) VALUES (:source, :target)"
    " ON CONFLICT (customer_id) DO UPDATE SET merged_into = excluded.merged_into"
    ") UPDATE merged_customers SET merged_into = :target WHERE merged_into = :source"
)


async def merge_customer(conn: AsyncConnection, source: uuid.UUID, target: uuid.UUID) -> None:
    """Move `source`'s rows to `target` (or to the customer `target` was merged into), both
    customers locked (in id order, as every other path here locks one customer) for the
    transaction."""
    target = (await conn.execute(_CURRENT, {"id": target})).scalar_one()
    for customer in sorted((source, target)):
        await lock_customer(conn, customer)
    params = {"source": source, "target": target}
    source_was_key_account = (await conn.execute(_ACTIVE, {"id": source})).first() is not None
    await conn.execute(_RECORD, params)
    await conn.execute(_KEY_ACCOUNT, params)
    await conn.execute(_CALLBACKS, params)
    await conn.execute(_DROP_KEY_ACCOUNT, params)
    await conn.execute(_ROWS, params)
    if source_was_key_account:
        # The registry changed for both: the router's and SLA's segment copies follow it (the
        # target's as its key account now stands, the merged customer's is gone).
        target_active = (await conn.execute(_ACTIVE, {"id": target})).scalar_one()
        await publish_segment(conn, target, bool(target_active))
        await publish_segment(conn, source, None)
