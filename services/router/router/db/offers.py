"""Offer rows: an agent's pending offers, answering one, expiring them, and writing a batch
of offers with their routing decisions, the tickets' new status, the agents' counters,
history and events in one statement."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope
from ccshared.outbox import OUTBOX_PART, outbox_params
from router.db.notifications import (
    INSERT_NOTIFICATIONS,
    notification_events,
    notification_params,
)
from router.db.tickets import (
    HISTORY_COLUMNS,
    INSERT_HISTORY,
    TICKET_COLUMNS,
    Ticket,
    ticket_from_row,
)
from router.domain.notifications import Notification

OFFER_FIELDS = "id, ticket_id, agent_id, status, offered_at, expires_at, responded_at, reason"


# A pending offer with what its ticket's summary is made of (`TicketSummary.of_columns`).
_PENDING_WITH_SUMMARY = text(
    "SELECT o.id, o.ticket_id, o.agent_id, o.status, o.offered_at, o.expires_at, "
    "o.responded_at, o.reason, t.channel, t.status AS ticket_status, t.subject_line, "
    "t.priority, t.customer_name, t.queued_at, t.last_contact_at, t.sla_deadline "
    "FROM offers o JOIN tickets t ON t.id = o.ticket_id "
    "WHERE o.agent_id = :a AND o.status = 'pending' ORDER BY o.offered_at"
)


async def pending_offers_of(conn: AsyncConnection, agent_id: str) -> list[Row[Any]]:
    """The agent's pending offers, each with its ticket's summary columns, in one query."""
    return list(await conn.execute(_PENDING_WITH_SUMMARY, {"a": agent_id}))


async def offers_of_ticket(conn: AsyncConnection, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            f"SELECT {OFFER_FIELDS} FROM offers WHERE ticket_id = :t "  # noqa: S608
            "ORDER BY offered_at"
        ),
        {"t": ticket_id},
    )
    return [dict(r._mapping) for r in rows]


@dataclass(frozen=True)
class HeldOffer:
    """An offer being answered, locked."""

    id: uuid.UUID
    ticket_id: uuid.UUID
    agent_id: str
    status: str


_TICKET_FIELDS = tuple(column.strip() for column in TICKET_COLUMNS.split(","))
# The offer is locked first (the CTE's row lock is taken when the join reads it), then its
# ticket (the top-level FOR UPDATE, after the join), the order of answering an offer
# (write_change's settling of offers takes them the other way, with SKIP LOCKED): one round trip
# instead of two.
_HELD_TICKET_COLUMNS = ", ".join(f"t.{column}" for column in _TICKET_FIELDS)
_LOCK_OFFER_AND_TICKET = text(
    f"WITH o AS (SELECT id AS held_offer_id, ticket_id AS held_ticket_id, "  # noqa: S608
    " agent_id AS held_agent_id, status AS held_status FROM offers WHERE id = :id FOR UPDATE) "
    f"SELECT o.*, {_HELD_TICKET_COLUMNS} "
    "FROM o JOIN tickets t ON t.id = o.held_ticket_id FOR UPDATE OF t"
)


async def lock_offer_and_ticket(
    conn: AsyncConnection, offer_id: uuid.UUID
) -> tuple[HeldOffer, Ticket] | None:
    """The offer and its ticket, both locked (an answer to the offer waits for another)."""
    row = (await conn.execute(_LOCK_OFFER_AND_TICKET, {"id": offer_id})).first()
    if row is None:
        return None
    values = row._mapping
    offer = HeldOffer(
        values["held_offer_id"],
        values["held_ticket_id"],
        values["held_agent_id"],
        values["held_status"],
    )
    return offer, ticket_from_row({column: values[column] for column in _TICKET_FIELDS})


async def rescind_offer(conn: AsyncConnection, offer_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        text(
            "UPDATE offers SET status = 'rescinded', responded_at = now(), reason = :r "
            "WHERE id = :id"
        ),
        {"id": offer_id, "r": reason},
    )


async def mark_accepted(conn: AsyncConnection, offer_id: uuid.UUID) -> None:
    await conn.execute(
        text("UPDATE offers SET status = 'accepted', responded_at = now() WHERE id = :id"),
        {"id": offer_id},
    )


_DECLINE = text(
    "UPDATE offers SET status = 'declined', responded_at = now(), reason = :r WHERE id = :id "  # noqa: S608
    f"RETURNING {OFFER_FIELDS}"
)


async def mark_declined(conn: AsyncConnection, offer_id: uuid.UUID, reason: str) -> dict[str, Any]:
    row = (await conn.execute(_DECLINE, {"id": offer_id, "r": reason})).one()
    return dict(row._mapping)


async def expire_offers(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[Any]:
    """Pending offers past their time, up to `limit`, marked timed out: (ticket_id, agent_id,
    id) rows. SKIP LOCKED: one being answered is left to its answer."""
    return list(
        (
            await conn.execute(
                text(
                    "UPDATE offers SET status = 'timed_out', responded_at = :now "
                    "WHERE id IN (SELECT id FROM offers WHERE status = 'pending' "
                    "AND expires_at <= :now ORDER BY expires_at LIMIT :n "
                    "FOR UPDATE SKIP LOCKED) RETURNING ticket_id, agent_id, id"
                ),
                {"now": now, "n": limit},
            )
        ).all()
    )


DECISION_COLUMNS = (
    ("id", "uuid"),
    ("ticket_id", "uuid"),
    ("at", "timestamptz"),
    ("policy_version", "int"),
    ("policy_step", "text"),
    ("queue_id", "text"),
    ("strategy", "text"),
    ("chosen_agent_id", "text"),
    ("candidates", "json"),
    ("tie_breaker", "text"),
)
OFFER_COLUMNS = (
    ("id", "uuid"),
    ("ticket_id", "uuid"),
    ("agent_id", "text"),
    ("status", "text"),
    ("offered_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("decision_id", "uuid"),
)

# A batch's offers in one statement (one round trip): the decisions, the offers, the tickets'
# new status, the agents' counters, the history and the events, as data-modifying CTEs.
# Foreign keys are checked at the end of the statement, so offers may name decisions and
# tickets written in it.
_WRITE_OFFERS = text(
    one_statement(
        ("decisions", insert_from_arrays("routing_decisions", DECISION_COLUMNS, prefix="d_")),
        ("offers", insert_from_arrays("offers", OFFER_COLUMNS, prefix="o_")),
        (
            "tickets",
            "UPDATE tickets t SET status = u.status, assignee_agent_id = u.agent, "
            "updated_at = now() FROM unnest(CAST(:t_ids AS uuid[]), CAST(:t_agents AS text[]), "
            "CAST(:t_statuses AS text[])) AS u(id, agent, status) WHERE t.id = u.id",
        ),
        (
            "agents",
            "UPDATE agents a SET last_assigned_at = :now, "
            "assignments_total = a.assignments_total + u.n, updated_at = now() "
            "FROM unnest(CAST(:a_ids AS text[]), CAST(:a_ns AS int[])) AS u(id, n) "
            "WHERE a.id = u.id",
        ),
        (
            "queues",
            "UPDATE queues q SET rr_cursor = u.cursor "
            "FROM unnest(CAST(:rr_queues AS text[]), CAST(:rr_cursors AS text[])) "
            "AS u(id, cursor) WHERE q.id = u.id",
        ),
        ("history", INSERT_HISTORY),
        ("notifications", INSERT_NOTIFICATIONS),
        OUTBOX_PART,
    )
)


async def write_offers(
    conn: AsyncConnection,
    *,
    now: datetime,
    decisions: list[tuple[Any, ...]],
    offers: list[tuple[Any, ...]],
    tickets: list[tuple[uuid.UUID, str, str]],
    per_agent: dict[str, int],
    rr_cursors: dict[str, str],
    history: list[tuple[Any, ...]],
    events: list[Envelope],
    notifications: Sequence[Notification] = (),
    parents: Mapping[uuid.UUID, str] | None = None,
) -> None:
    """`tickets`: (id, agent, new status); `per_agent`: offers made to each agent;
    `rr_cursors`: queue → the last agent offered (round robin); `notifications`: each agent
    told of their new offer (their events after `events`); `parents`: event id → the trace
    context it carries (each ticket's own contact's, when traced)."""
    queues = sorted(rr_cursors)  # in queue id order, as every replica locks queue rows
    await conn.execute(
        _WRITE_OFFERS,
        {
            **array_params(DECISION_COLUMNS, decisions, prefix="d_"),
            **array_params(OFFER_COLUMNS, offers, prefix="o_"),
            "t_ids": [t[0] for t in tickets],
            "t_agents": [t[1] for t in tickets],
            "t_statuses": [t[2] for t in tickets],
            "now": now,
            "a_ids": list(per_agent),
            "a_ns": list(per_agent.values()),
            "rr_queues": queues,
            "rr_cursors": [rr_cursors[q] for q in queues],
            **array_params(HISTORY_COLUMNS, history, prefix="h_"),
            **notification_params(notifications),
            **outbox_params([*events, *notification_events(notifications)], parents),
        },
    )
