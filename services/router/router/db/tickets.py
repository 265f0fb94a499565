"""Ticket rows: reading them (one locked for a change, a page, one with its contacts, history,
decisions and offers), who may read them, and writing a ticket's change with its history and
events in one statement (`SqlTicketsUnitOfWork`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope, new_event
from ccshared.logging import correlation_id
from ccshared.outbox import OUTBOX_PART, outbox_params
from ccshared.problems import NotFound
from router.db import messages as messages_db
from router.db.agents import change_status
from router.db.corrections import Correction, add_correction, first_contact_text
from router.db.notifications import write_notifications
from router.db.queues import wrap_up_of
from router.domain.assignment import WRAP_UP, candidates_from_json, wrap_up_until
from router.domain.conversation import Message
from router.domain.notifications import Notification
from router.domain.tickets import ROUTER, ContactHistory, HistoryEntry, Ticket, TicketChange

__all__ = ["SqlTicketsUnitOfWork", "Ticket", "TicketNotFound"]

TICKET_COLUMNS = (
    "id, customer_id, channel, status, category, priority, language, segment, queue_id, "
    "owner_agent_id, assignee_agent_id, classification, policy_version, policy_step, "
    "step_timeout_at, sla_deadline, follow_up_of, resolution_code, first_contact_resolution, "
    "opened_at, queued_at, last_contact_at, first_response_at, resolved_at, closed_at, updated_at, "
    "subject_line, customer_name"
)


def ticket_from_row(row: Any) -> Ticket:
    """A Ticket from a row of TICKET_COLUMNS (or a mapping of them)."""
    values = dict(row) if isinstance(row, dict) else dict(row._mapping)
    if isinstance(values["classification"], str):
        values["classification"] = orjson.loads(values["classification"])
    return Ticket(**values)


# ticket_history's columns with their SQL types, for writing many rows at once
# (ccshared.db.insert_many / insert_from_arrays); rows are tuples in this order.
HISTORY_COLUMNS = (
    ("ticket_id", "uuid"),
    ("at", "timestamptz"),
    ("actor", "text"),
    ("action", "text"),
    ("from_status", "text"),
    ("to_status", "text"),
    ("reason", "text"),
    ("data", "jsonb"),
)


class TicketNotFound(NotFound):
    pass


async def get_ticket(conn: AsyncConnection, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket:
    suffix = " FOR UPDATE" if lock else ""
    row = (
        await conn.execute(
            text(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = :id{suffix}"),  # noqa: S608
            {"id": ticket_id},
        )
    ).first()
    if row is None:
        raise TicketNotFound(f"No ticket {ticket_id}.")
    return ticket_from_row(row)


async def ticket_traceparent(conn: AsyncConnection, ticket_id: uuid.UUID) -> str | None:
    """The trace context of the contact that opened the ticket (None if it was not traced)."""
    found = await conn.execute(
        text("SELECT traceparent FROM tickets WHERE id = :id"), {"id": ticket_id}
    )
    value: str | None = found.scalar()
    return value


async def ticket_traceparents(
    conn: AsyncConnection, ticket_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """`ticket_traceparent` for many tickets at once: those that have one."""
    found = await conn.execute(
        text(
            "SELECT id, traceparent FROM tickets "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND traceparent IS NOT NULL"
        ),
        {"ids": ticket_ids},
    )
    return {row.id: row.traceparent for row in found}


async def ticket_exists(conn: AsyncConnection, ticket_id: uuid.UUID) -> bool:
    found = await conn.execute(text("SELECT 1 FROM tickets WHERE id = :id"), {"id": ticket_id})
    return found.first() is not None


# Who may read a ticket (the same rule as `agent_may_read`, in SQL, for lists that must filter
# before their LIMIT): its assignee, its owner, and, while it waits in a queue, the agents who
# serve that queue (whose skills cover the queue's required skills, as the assigner decides).
# Columns are qualified: the subquery's agents have a `status` too.
READABLE_BY_AGENT = (
    "(tickets.assignee_agent_id = :reader OR tickets.owner_agent_id = :reader "
    " OR (tickets.status = 'queued' AND tickets.queue_id IN (SELECT q.id FROM queues q "
    "   JOIN agents a ON a.id = :reader AND a.skills ?& q.required_skills)))"
)
_SERVES_QUEUE = text(
    "SELECT 1 FROM queues q JOIN agents a ON a.id = :agent AND a.skills ?& q.required_skills "
    "WHERE q.id = :queue"
)


async def agent_may_read(conn: AsyncConnection, ticket: Ticket, agent_id: str) -> bool:
    """Whether the agent may read the ticket (see `READABLE_BY_AGENT`)."""
    if agent_id in (ticket.assignee_agent_id, ticket.owner_agent_id):
        return True
    if ticket.status != "queued" or ticket.queue_id is None:
        return False
    found = await conn.execute(_SERVES_QUEUE, {"agent": agent_id, "queue": ticket.queue_id})
    return found.first() is not None


async def get_tickets(
    conn: AsyncConnection, ticket_ids: list[uuid.UUID], *, lock: bool = False
) -> dict[uuid.UUID, Ticket]:
    """The tickets of those ids that exist, by id; locked in id order if `lock` (so that two
    transactions locking overlapping sets this way never wait on each other in a cycle)."""
    suffix = " ORDER BY id FOR UPDATE" if lock else ""
    rows = await conn.execute(
        text(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ANY(:ids){suffix}"),  # noqa: S608
        {"ids": ticket_ids},
    )
    return {row.id: ticket_from_row(row) for row in rows}


INSERT_HISTORY = insert_from_arrays("ticket_history", HISTORY_COLUMNS, prefix="h_")


def history_row(ticket_id: uuid.UUID, entry: HistoryEntry) -> tuple[Any, ...]:
    data = orjson.dumps(entry.data).decode() if entry.data else "{}"
    return (
        ticket_id,
        entry.at,
        entry.actor,
        entry.action,
        entry.from_status,
        entry.to_status,
        entry.reason,
        data,
    )


@lru_cache(maxsize=64)
def _change_sql(columns: tuple[str, ...], events: bool) -> TextClause:
    """UPDATE of the ticket's `columns`, its history rows and (if `events`) its events, in one
    statement. Column names are the domain's own, never input."""
    assignments = ", ".join(f"{column} = :s_{column}" for column in columns)
    update = f"UPDATE tickets SET {assignments}, updated_at = now() WHERE id = :id"  # noqa: S608
    parts = [("ticket", update), ("history", INSERT_HISTORY)]
    if events:
        parts.append(OUTBOX_PART)
    return text(one_statement(*parts))


# The ticket is locked before its offers here, the reverse of accept, decline and expiry:
# SKIP LOCKED leaves an offer that one of those holds to them (they then find the ticket
# changed: a 409, or an expiry that leaves the ticket alone) instead of waiting on it, which
# could deadlock.
_SETTLE_OFFERS = text(
    "UPDATE offers SET status = :status, responded_at = :now, reason = :reason "
    "WHERE id IN (SELECT id FROM offers WHERE ticket_id = :id AND status = 'pending' "
    "AND (CAST(:agent AS text) IS NULL OR agent_id = :agent) FOR UPDATE SKIP LOCKED)"
)


async def write_change(conn: AsyncConnection, change: TicketChange) -> None:
    """A ticket's change: its pending offers settled (if the change says so), then its new
    values, history rows and events in one statement."""
    if change.offers is not None:
        settled = change.offers
        await conn.execute(
            _SETTLE_OFFERS,
            {
                "id": change.ticket_id,
                "now": change.at,
                "reason": settled.reason,
                "status": settled.status,
                "agent": settled.agent_id,
            },
        )
    cid = correlation_id.get()
    envelopes = [new_event(p, producer=ROUTER, correlation_id=cid) for p in change.events]
    history = [history_row(change.ticket_id, entry) for entry in change.history]
    await conn.execute(
        _change_sql(tuple(change.sets), bool(envelopes)),
        {
            **{f"s_{column}": value for column, value in change.sets.items()},
            "id": change.ticket_id,
            **array_params(HISTORY_COLUMNS, history, prefix="h_"),
            **outbox_params(envelopes),
        },
    )


_CONTACT_HISTORY = text(
    "SELECT (SELECT count(*) FROM ticket_contacts WHERE ticket_id = :t) AS contacts, "
    "EXISTS (SELECT 1 FROM ticket_history WHERE ticket_id = :t "
    "        AND action IN ('transfer', 'reopen')) AS moved"
)


async def contact_history(conn: AsyncConnection, ticket_id: uuid.UUID) -> ContactHistory:
    """How many contacts the ticket has, and whether it was ever transferred or reopened."""
    row = (await conn.execute(_CONTACT_HISTORY, {"t": ticket_id})).one()
    return ContactHistory(customer_contacts=row.contacts, transferred_or_reopened=row.moved)


async def agent_available(conn: AsyncConnection, agent_id: str | None) -> bool:
    if agent_id is None:
        return False
    status = (
        await conn.execute(text("SELECT status FROM agents WHERE id = :id"), {"id": agent_id})
    ).scalar()
    return status == "available"


async def queue_exists(conn: AsyncConnection, queue_id: str) -> bool:
    found = await conn.execute(text("SELECT 1 FROM queues WHERE id = :q"), {"q": queue_id})
    return found.first() is not None


async def lock_agent(conn: AsyncConnection, agent_id: str) -> bool:
    """Lock the agent as the assigner locks it (a round counting this agent's load waits for
    the change, and counts it); whether it exists."""
    found = await conn.execute(
        text("SELECT 1 FROM agents WHERE id = :a FOR NO KEY UPDATE"), {"a": agent_id}
    )
    return found.first() is not None


# What `TicketBatch` gathers across tickets into one UPDATE; a change of anything else (a
# status change, which may settle offers) is written at once, after what came before it.
_BATCHED = frozenset({"priority", "priority_rank", "queue_id", "step_timeout_at"})
# The batch's changes in one statement: a NULL leaves a column as it is.
_UPDATE_BATCH = (
    "UPDATE tickets t SET priority = coalesce(u.priority, t.priority), "
    "priority_rank = coalesce(u.priority_rank, t.priority_rank), "
    "queue_id = coalesce(u.queue_id, t.queue_id), "
    "step_timeout_at = CASE WHEN u.clear_timeout THEN NULL ELSE t.step_timeout_at END, "
    "updated_at = now() "
    "FROM unnest(CAST(:u_ids AS uuid[]), CAST(:u_priorities AS text[]), "
    "CAST(:u_ranks AS int[]), CAST(:u_queues AS text[]), CAST(:u_clear_timeouts AS bool[])) "
    "AS u(id, priority, priority_rank, queue_id, clear_timeout) WHERE t.id = u.id"
)
_BATCH_PARTS = (("changed", _UPDATE_BATCH), ("history", INSERT_HISTORY))
_WRITE_BATCH = {
    True: text(one_statement(*_BATCH_PARTS, OUTBOX_PART)),
    False: text(one_statement(*_BATCH_PARTS)),  # no empty outbox INSERT: no NOTIFY
}


class TicketBatch:
    """Changes of many tickets (priority, queue, a cleared step timeout), their history rows
    and events, gathered in order and written in one statement (`flush`). A change of other
    columns is written at once (`write_change`), after what was gathered before it, so each
    ticket's history and events keep their order. Events take the correlation id in force
    when they are added."""

    def __init__(self) -> None:
        self._updates: dict[uuid.UUID, dict[str, Any]] = {}
        self._history: list[tuple[Any, ...]] = []
        self._events: list[Envelope] = []

    async def add(self, conn: AsyncConnection, change: TicketChange) -> None:
        batched = (
            change.offers is None
            and change.sets.keys() <= _BATCHED
            and change.sets.get("step_timeout_at") is None
        )
        if not batched:
            await self.flush(conn)
            await write_change(conn, change)
            return
        if change.sets:
            self._updates.setdefault(change.ticket_id, {}).update(change.sets)
        self._history.extend(history_row(change.ticket_id, entry) for entry in change.history)
        cid = correlation_id.get()
        self._events.extend(
            new_event(p, producer=ROUTER, correlation_id=cid) for p in change.events
        )

    async def flush(self, conn: AsyncConnection) -> None:
        if not (self._updates or self._history or self._events):
            return
        updates = list(self._updates.items())
        await conn.execute(
            _WRITE_BATCH[bool(self._events)],
            {
                "u_ids": [ticket_id for ticket_id, _ in updates],
                "u_priorities": [u.get("priority") for _, u in updates],
                "u_ranks": [u.get("priority_rank") for _, u in updates],
                "u_queues": [u.get("queue_id") for _, u in updates],
                "u_clear_timeouts": ["step_timeout_at" in u for _, u in updates],
                **array_params(HISTORY_COLUMNS, self._history, prefix="h_"),
                **outbox_params(self._events),
            },
        )
        self._updates, self._history, self._events = {}, [], []


class SqlTicketsUnitOfWork:
    """One transaction of ticket changes: reads what a change depends on, writes changes
    (`write_change`). A fake with the same methods stands in for it in handler tests."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None

    @classmethod
    def on(cls, conn: AsyncConnection) -> SqlTicketsUnitOfWork:
        """Reads (and writes) on a connection the caller holds, outside `async with`."""
        uow = cls(conn.engine)
        uow._conn = conn
        return uow

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None, "use the unit of work inside `async with`"
        return self._conn

    async def __aenter__(self) -> SqlTicketsUnitOfWork:
        self._conn = await self.engine.connect()
        await self._conn.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self.conn, None
        try:
            if exc_type is None:
                await conn.commit()
            else:
                await conn.rollback()
        finally:
            await conn.close()

    async def ticket(self, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket:
        return await get_ticket(self.conn, ticket_id, lock=lock)

    async def agent_may_read(self, ticket: Ticket, agent_id: str) -> bool:
        return await agent_may_read(self.conn, ticket, agent_id)

    async def agent_available(self, agent_id: str | None) -> bool:
        return await agent_available(self.conn, agent_id)

    async def queue_exists(self, queue_id: str) -> bool:
        return await queue_exists(self.conn, queue_id)

    async def first_contact_text(self, ticket_id: uuid.UUID) -> str:
        return await first_contact_text(self.conn, ticket_id)

    async def add_correction(self, correction: Correction) -> None:
        await add_correction(self.conn, correction)

    async def lock_agent(self, agent_id: str) -> bool:
        return await lock_agent(self.conn, agent_id)

    async def write(self, change: TicketChange) -> None:
        await write_change(self.conn, change)

    async def traceparent(self, ticket_id: uuid.UUID) -> str | None:
        return await ticket_traceparent(self.conn, ticket_id)

    async def contact_history(self, ticket_id: uuid.UUID) -> ContactHistory:
        return await contact_history(self.conn, ticket_id)

    async def last_contact(self, ticket_id: uuid.UUID) -> Any:
        return await messages_db.last_contact(self.conn, ticket_id)

    async def canned_exists(self, canned_id: uuid.UUID) -> bool:
        found = await self.conn.execute(
            text("SELECT 1 FROM canned_responses WHERE id = :id"), {"id": canned_id}
        )
        return found.first() is not None

    async def add_message(self, message: Message) -> None:
        await messages_db.insert_message(self.conn, message)

    async def unknown_agents(self, agent_ids: list[str]) -> list[str]:
        """Those of `agent_ids` that name no agent, in the order given."""
        if not agent_ids:
            return []
        rows = await self.conn.execute(
            text("SELECT id FROM agents WHERE id = ANY(:ids)"), {"ids": agent_ids}
        )
        known = {r.id for r in rows}
        return [a for a in agent_ids if a not in known]

    async def notify(self, notifications: list[Notification]) -> None:
        await write_notifications(self.conn, notifications)

    async def start_wrap_up(self, ticket: Ticket, at: datetime) -> None:
        """The agent who held the resolved ticket, if available, goes into wrap-up for its
        queue's `wrap_up_s` (none if 0): no new offers until then."""
        agent_id = ticket.assignee_agent_id
        if agent_id is None:
            return
        until = wrap_up_until("available", await wrap_up_of(self.conn, ticket.queue_id), at)
        if until is not None:
            await change_status(
                self.conn,
                agent_id,
                "wrap_up",
                reason=WRAP_UP,
                actor=ROUTER,
                at=at,
                ticket_id=ticket.id,
                until=until,
                only_from=("available",),
            )


# --- reading ------------------------------------------------------------------------------


async def page_of_tickets(
    conn: AsyncConnection,
    *,
    limit: int,
    reader: str | None = None,
    statuses: list[str] | None = None,
    queue_id: str | None = None,
    agent_id: str | None = None,
    customer_id: uuid.UUID | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Ticket]:
    """Newest first, up to `limit`, filtered; `reader`: an agent who sees only the tickets
    they may read (filtered in the query, so every page is full and in order)."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit}
    filters: dict[str, tuple[str, Any]] = {
        "reader": (READABLE_BY_AGENT, reader),
        "statuses": ("status = ANY(:statuses)", statuses),
        "queue": ("queue_id = :queue", queue_id),
        "agent": ("(assignee_agent_id = :agent OR owner_agent_id = :agent)", agent_id),
        "customer": ("customer_id = :customer", customer_id),
    }
    for name, (condition, value) in filters.items():
        if value:
            where.append(condition)
            params[name] = value
    if before is not None:
        where.append("(opened_at, id) < (:at, :last)")
        params.update(at=before[0], last=before[1])
    rows = await conn.execute(
        text(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY opened_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [ticket_from_row(r) for r in rows]


def _obj(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def ticket_contacts(conn: AsyncConnection, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT contact_id, channel, received_at, subject, text FROM ticket_contacts "
            "WHERE ticket_id = :t ORDER BY received_at"
        ),
        {"t": ticket_id},
    )
    return [dict(r._mapping) for r in rows]


async def ticket_history(conn: AsyncConnection, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT at, actor, action, from_status, to_status, reason, data "
            "FROM ticket_history WHERE ticket_id = :t ORDER BY id"
        ),
        {"t": ticket_id},
    )
    return [{**r._mapping, "data": _obj(r.data)} for r in rows]


async def routing_decisions(conn: AsyncConnection, ticket_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT id, at, policy_version, policy_step, queue_id, strategy, chosen_agent_id, "
            "candidates, tie_breaker FROM routing_decisions WHERE ticket_id = :t ORDER BY at"
        ),
        {"t": ticket_id},
    )
    return [{**r._mapping, "candidates": candidates_from_json(_obj(r.candidates))} for r in rows]
