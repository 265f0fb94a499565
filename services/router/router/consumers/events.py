"""What the router does with other services' events: contacts become tickets, SLA escalations
raise priority or move tickets, feedback follow-ups open follow-up tickets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler, each_event
from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import (
    ContactReceived,
    CustomerHints,
    FollowUpRequested,
    SlaEscalated,
    TicketRouted,
)
from ccshared.logging import correlation_id
from ccshared.outbox import OUTBOX_PART, outbox_params
from ccshared.service import ConsumerSpec, Runtime
from router.assigner import Assigner
from router.db.policies import PolicyCache
from router.db.rules import RulesCache
from router.db.tickets import HISTORY_COLUMNS, Ticket, TicketNotFound, get_ticket, get_tickets
from router.domain.classification import PRIORITY_RANK
from router.domain.lifecycle import OPEN_STATUSES
from router.flows import ROUTER, change_status, open_ticket, receive_contact, receive_contacts

ESCALATION_QUEUE = "escalations"


def _nudge(runtime: Runtime) -> Callable[[Envelope], None]:
    assigner: Assigner = runtime.extras["assigner"]
    return lambda _event: assigner.nudge(agents_changed=False)  # a new or moved ticket


def _nudge_agents_changed(runtime: Runtime) -> Callable[[Envelope], None]:
    assigner: Assigner = runtime.extras["assigner"]
    return lambda _event: assigner.nudge(agents_changed=True)


def contacts_to_tickets(runtime: Runtime) -> Handler:
    policies: PolicyCache = runtime.extras["policies"]
    rules: RulesCache = runtime.extras["rules"]

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, ContactReceived)
        await receive_contact(conn, payload, await policies.current(), await rules.current())

    return handle


def contacts_to_tickets_in_bulk(runtime: Runtime) -> BatchHandler:
    policies: PolicyCache = runtime.extras["policies"]
    rules: RulesCache = runtime.extras["rules"]

    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        contacts = []
        for envelope, payload in events:
            assert isinstance(payload, ContactReceived)
            contacts.append((envelope.correlation_id or str(envelope.event_id), payload))
        await receive_contacts(conn, contacts, await policies.current(), await rules.current())

    return handle


def apply_escalations(runtime: Runtime) -> Handler:
    bulk = apply_escalations_in_bulk(runtime)

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        await bulk(conn, [(envelope, payload)])

    return handle


def apply_escalations_in_bulk(runtime: Runtime) -> BatchHandler:
    """Escalations of a fetch, in order: the tickets are locked at once (in id order), the
    priority and queue changes, history rows and events gathered and written in one
    statement. A ticket an agent holds is taken back first (`change_status`, at once, after
    what was gathered before it)."""

    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        ids = sorted({p.ticket_id for _, p in events if isinstance(p, SlaEscalated)})
        tickets = await get_tickets(conn, ids, lock=True)
        writes = _EscalationWrites()
        for envelope, payload in events:
            assert isinstance(payload, SlaEscalated)
            token = correlation_id.set(envelope.correlation_id or str(envelope.event_id))
            try:
                ticket = tickets.get(payload.ticket_id)
                # Not ours (another deployment's ticket), or no longer open: nothing to do.
                if ticket is not None and ticket.status in OPEN_STATUSES:
                    await _escalate(conn, ticket, payload, writes)
            finally:
                correlation_id.reset(token)
        await writes.flush(conn)

    return handle


async def _escalate(
    conn: AsyncConnection, ticket: Ticket, payload: SlaEscalated, writes: _EscalationWrites
) -> None:
    now = datetime.now(UTC)
    why = f"SLA {payload.metric} escalation level {payload.level}"
    if "raise_priority" in payload.actions and payload.raise_priority_to:
        new = payload.raise_priority_to
        if PRIORITY_RANK[new] < PRIORITY_RANK[ticket.priority]:  # type: ignore[index]
            writes.update(ticket.id, priority=new, priority_rank=PRIORITY_RANK[new])
            writes.history(
                ticket.id, now, "raise_priority", why, {"from": ticket.priority, "to": new}
            )
            ticket.priority = new
    if "move_to_escalation_queue" in payload.actions:
        queue = payload.escalation_queue_id or ESCALATION_QUEUE
        if ticket.queue_id != queue:
            if ticket.status != "queued":
                await writes.flush(conn)  # what came before stays before it in the history
                await change_status(conn, ticket, "transfer", actor="sla", reason=why)
            writes.update(ticket.id, queue_id=queue, step_timeout_at=None)
            writes.history(
                ticket.id, now, "escalate", why, {"from_queue": ticket.queue_id, "to_queue": queue}
            )
            ticket.queue_id = queue
            writes.publish(
                TicketRouted(
                    ticket_id=ticket.id,
                    queue_id=queue,
                    priority=ticket.priority,  # type: ignore[arg-type]
                    category=ticket.category,
                    channel=ticket.channel,  # type: ignore[arg-type]
                    segment=ticket.segment,
                    policy_version=ticket.policy_version,
                    policy_step=ticket.policy_step,
                    reason=why,
                    at=now,
                )
            )
    for action in ("notify_supervisor", "notify_manager"):
        if action in payload.actions:
            writes.history(ticket.id, now, action, why, {})


class _EscalationWrites:
    """Ticket changes, history rows and events of a batch of escalations, written together."""

    def __init__(self) -> None:
        self._updates: dict[uuid.UUID, dict[str, Any]] = {}
        self._history: list[tuple[Any, ...]] = []
        self._events: list[Envelope] = []

    def update(self, ticket_id: uuid.UUID, **columns: Any) -> None:
        self._updates.setdefault(ticket_id, {}).update(columns)

    def history(
        self, ticket_id: uuid.UUID, at: datetime, action: str, reason: str, data: dict[str, Any]
    ) -> None:
        self._history.append(
            (ticket_id, at, "sla", action, None, None, reason, orjson.dumps(data).decode())
        )

    def publish(self, payload: BaseModel) -> None:
        self._events.append(
            new_event(payload, producer=ROUTER, correlation_id=correlation_id.get())
        )

    async def flush(self, conn: AsyncConnection) -> None:
        if not (self._updates or self._history or self._events):
            return
        updates = list(self._updates.items())
        await conn.execute(
            _WRITE_ESCALATIONS[bool(self._events)],
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


# The changes of `_EscalationWrites` in one statement: a NULL leaves a column as it is.
_UPDATE_ESCALATED = (
    "UPDATE tickets t SET priority = coalesce(u.priority, t.priority), "
    "priority_rank = coalesce(u.priority_rank, t.priority_rank), "
    "queue_id = coalesce(u.queue_id, t.queue_id), "
    "step_timeout_at = CASE WHEN u.clear_timeout THEN NULL ELSE t.step_timeout_at END, "
    "updated_at = now() "
    "FROM unnest(CAST(:u_ids AS uuid[]), CAST(:u_priorities AS text[]), "
    "CAST(:u_ranks AS int[]), CAST(:u_queues AS text[]), CAST(:u_clear_timeouts AS bool[])) "
    "AS u(id, priority, priority_rank, queue_id, clear_timeout) WHERE t.id = u.id"
)
_ESCALATION_PARTS = (
    ("changed", _UPDATE_ESCALATED),
    ("history", insert_from_arrays("ticket_history", HISTORY_COLUMNS, prefix="h_")),
)
_WRITE_ESCALATIONS = {
    True: text(one_statement(*_ESCALATION_PARTS, OUTBOX_PART)),
    False: text(one_statement(*_ESCALATION_PARTS)),  # no empty outbox INSERT: no NOTIFY
}


def open_follow_ups(runtime: Runtime) -> Handler:
    policies: PolicyCache = runtime.extras["policies"]
    rules: RulesCache = runtime.extras["rules"]

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, FollowUpRequested)
        exists = (
            await conn.execute(
                text("SELECT 1 FROM tickets WHERE id = :id"), {"id": payload.follow_up_id}
            )
        ).first()
        if exists:
            return
        earlier = None
        if payload.ticket_id is not None:
            try:
                earlier = await get_ticket(conn, payload.ticket_id)
            except TicketNotFound:
                earlier = None
        channel = payload.channel or (earlier.channel if earlier else "phone")
        what = (
            "customer was unhappy with the answer"
            if payload.reason == "detractor"
            else "scheduled call-back to a key account"
        )
        contact = ContactReceived(
            contact_id=payload.follow_up_id,
            customer_id=payload.customer_id,
            channel=channel,  # type: ignore[arg-type]
            external_id=f"follow-up:{payload.follow_up_id}",
            received_at=payload.due_at,
            subject="Follow-up" if payload.language != "zh" else "回访",
            text=(payload.note or what),
            language=payload.language,
            customer=CustomerHints(),
            metadata={"segment": earlier.segment} if earlier and earlier.segment else {},
        )
        await open_ticket(
            conn,
            contact,
            await policies.current(),
            await rules.current(),
            ticket_id=payload.follow_up_id,
            follow_up_of=payload.ticket_id,
            category="follow_up",
            owner_agent_id=earlier.owner_agent_id if earlier else None,
            queue_id=earlier.queue_id if earlier and earlier.queue_id else None,
        )

    return handle


CONTACTS = ConsumerSpec(
    name="contacts",
    topics=["intake.contacts"],
    handler=contacts_to_tickets,
    event_types=frozenset({"contact.received"}),
    after_commit=_nudge,
    batch_handler=contacts_to_tickets_in_bulk,
)
ESCALATIONS = ConsumerSpec(
    name="escalations",
    topics=["sla.events"],
    handler=apply_escalations,
    # A fetch in one transaction, as for contacts: escalations come in bursts (every ticket
    # that an SLA policy level catches at once), one commit each fell behind them; and its
    # tickets locked and its changes written together.
    batch_handler=apply_escalations_in_bulk,
    event_types=frozenset({"sla.escalated"}),
    after_commit=_nudge_agents_changed,  # a ticket moved to the escalation queue frees its agent
)
FOLLOW_UPS = ConsumerSpec(
    name="follow-ups",
    topics=["feedback.events"],
    handler=open_follow_ups,
    batch_handler=lambda runtime: each_event(open_follow_ups(runtime)),
    event_types=frozenset({"followup.requested"}),
    after_commit=_nudge,
)
