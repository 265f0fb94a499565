"""What the router does with other services' events: contacts become tickets, SLA escalations
raise priority or move tickets, feedback follow-ups open follow-up tickets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import BatchHandler, Handler, each_event
from ccshared.events import Envelope
from ccshared.events.payloads import (
    ContactReceived,
    CustomerHints,
    FollowUpRequested,
    SlaEscalated,
    TicketRouted,
)
from ccshared.service import ConsumerSpec, Runtime
from router.assigner import Assigner
from router.db.policies import PolicyCache
from router.db.rules import RulesCache
from router.db.tickets import TicketNotFound, add_history, get_ticket
from router.domain.classification import PRIORITY_RANK
from router.domain.lifecycle import OPEN_STATUSES
from router.flows import change_status, open_ticket, publish, receive_contact, receive_contacts

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
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, SlaEscalated)
        try:
            ticket = await get_ticket(conn, payload.ticket_id, lock=True)
        except TicketNotFound:
            return  # not ours (another deployment's ticket); nothing to escalate
        if ticket.status not in OPEN_STATUSES:
            return
        now = datetime.now(UTC)
        why = f"SLA {payload.metric} escalation level {payload.level}"
        if "raise_priority" in payload.actions and payload.raise_priority_to:
            new = payload.raise_priority_to
            if PRIORITY_RANK[new] < PRIORITY_RANK[ticket.priority]:  # type: ignore[index]
                await conn.execute(
                    text(
                        "UPDATE tickets SET priority = :p, priority_rank = :r, "
                        "updated_at = now() WHERE id = :id"
                    ),
                    {"p": new, "r": PRIORITY_RANK[new], "id": ticket.id},
                )
                await add_history(
                    conn,
                    ticket.id,
                    at=now,
                    actor="sla",
                    action="raise_priority",
                    reason=why,
                    data={"from": ticket.priority, "to": new},
                )
                ticket.priority = new
        if "move_to_escalation_queue" in payload.actions:
            queue = payload.escalation_queue_id or ESCALATION_QUEUE
            if ticket.queue_id != queue:
                if ticket.status != "queued":
                    await change_status(conn, ticket, "transfer", actor="sla", reason=why)
                await conn.execute(
                    text(
                        "UPDATE tickets SET queue_id = :q, step_timeout_at = NULL, "
                        "updated_at = now() WHERE id = :id"
                    ),
                    {"q": queue, "id": ticket.id},
                )
                await add_history(
                    conn,
                    ticket.id,
                    at=now,
                    actor="sla",
                    action="escalate",
                    reason=why,
                    data={"from_queue": ticket.queue_id, "to_queue": queue},
                )
                await publish(
                    conn,
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
                    ),
                )
        for action in ("notify_supervisor", "notify_manager"):
            if action in payload.actions:
                await add_history(conn, ticket.id, at=now, actor="sla", action=action, reason=why)

    return handle


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
    # that an SLA policy level catches at once), one commit each fell behind them.
    batch_handler=lambda runtime: each_event(apply_escalations(runtime)),
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
