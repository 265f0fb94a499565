"""The router's API for the contact-center UI: queues, agents, tickets, offers, routing policy.

Every call carries the user's token (`router.api.auth`): agents act on their own behalf and on
their own tickets; changes that shape routing (queues, agents, the policy) are a supervisor's.
Every ticket change goes through the lifecycle: an invalid one is a 409 that says why.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.auth import Principal
from ccshared.events.payloads import TicketClosed, TicketReplied, TicketResolved, TicketTransferred
from ccshared.problems import Conflict, FieldError, NotFound, Problem
from ccshared.user_auth import AUTH_RESPONSES
from router.api.auth import (
    Forbidden,
    principal,
    require_on_ticket,
    require_self_or_supervisor,
    supervisor,
)
from router.api.schemas import (
    AgentIn,
    AgentOut,
    AgentStatusIn,
    ClassificationRuleIn,
    ClassificationRulesIn,
    ClassificationRulesOut,
    DeclineIn,
    OfferOut,
    PolicyIn,
    PolicyOut,
    PolicyStepIn,
    QueueIn,
    QueueOut,
    ReasonIn,
    ReplyIn,
    ResolveIn,
    TicketDetail,
    TicketOut,
    TicketPage,
    TransferIn,
)
from router.assigner import Assigner, agent_loads
from router.db.policies import (
    PolicyCache,
    load_policy,
    policy_from_documents,
    save_policy,
    step_document,
)
from router.db.rules import RulesCache, load_rules, save_rules
from router.db.tickets import (
    READABLE_BY_AGENT,
    TICKET_COLUMNS,
    Ticket,
    TicketNotFound,
    add_history,
    agent_may_read,
    get_ticket,
)
from router.domain.classification import InvalidRule, rule_document, rules_from_documents
from router.domain.policy import InvalidPolicy
from router.flows import change_status, publish

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(principal)],
    responses=AUTH_RESPONSES,
)
User = Depends(principal)
Supervisor = Depends(supervisor)


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.runtime.engine
    return engine


def _assigner(request: Request) -> Assigner:
    assigner: Assigner = request.app.state.runtime.extras["assigner"]
    return assigner


def _obj(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


# --- queues -------------------------------------------------------------------------------


@router.get(
    "/queues",
    response_model=list[QueueOut],
    tags=["queues"],
    summary="Queues with their depth, oldest wait and available agents",
)
async def list_queues(request: Request) -> list[QueueOut]:
    async with _engine(request).connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT q.id, q.name, q.required_skills, q.strategy, q.offer_timeout_s, "
                "  count(t.id) AS depth, extract(epoch FROM now() - min(t.queued_at)) AS oldest, "
                "  (SELECT count(*) FROM agents a WHERE a.status = 'available' "
                "     AND a.skills ?& q.required_skills) AS available "
                "FROM queues q LEFT JOIN tickets t ON t.queue_id = q.id AND t.status = 'queued' "
                "GROUP BY q.id ORDER BY q.id"
            )
        )
        return [
            QueueOut(
                id=r.id,
                name=r.name,
                required_skills=list(r.required_skills),
                strategy=r.strategy,
                offer_timeout_s=r.offer_timeout_s,
                depth=r.depth,
                oldest_wait_s=float(r.oldest) if r.oldest is not None else None,
                agents_available=r.available,
            )
            for r in rows
        ]


@router.put(
    "/queues/{queue_id}",
    response_model=QueueOut,
    tags=["queues"],
    summary="Create or change a queue (supervisor)",
)
async def put_queue(
    queue_id: str, body: QueueIn, request: Request, user: Principal = Supervisor
) -> QueueOut:
    async with _engine(request).begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO queues (id, name, required_skills, strategy, offer_timeout_s) "
                "VALUES (:id, :name, :skills, :strategy, :timeout) ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, required_skills = EXCLUDED.required_skills, "
                "strategy = EXCLUDED.strategy, offer_timeout_s = EXCLUDED.offer_timeout_s, "
                "updated_at = now()"
            ),
            {
                "id": queue_id,
                "name": body.name,
                "skills": body.required_skills,
                "strategy": body.strategy,
                "timeout": body.offer_timeout_s,
            },
        )
    _assigner(request).nudge()
    return QueueOut(id=queue_id, **body.model_dump())


# --- agents -------------------------------------------------------------------------------


async def _agent_out(conn: AsyncConnection, agent_id: str) -> AgentOut:
    row = (
        await conn.execute(
            text(
                "SELECT id, name, role, skills, capacity, status, idle_since, last_assigned_at, "
                "assignments_total FROM agents WHERE id = :id"
            ),
            {"id": agent_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"No agent {agent_id}.")
    load = (await agent_loads(conn, agent_id)).get(agent_id, {})
    return AgentOut(
        id=row.id,
        name=row.name,
        role=row.role,
        skills=_obj(row.skills),
        capacity=_obj(row.capacity),
        status=row.status,
        load=load,
        idle_since=row.idle_since,
        last_assigned_at=row.last_assigned_at,
        assignments_total=row.assignments_total,
    )


@router.get("/agents", response_model=list[AgentOut], tags=["agents"])
async def list_agents(request: Request) -> list[AgentOut]:
    async with _engine(request).connect() as conn:
        ids = [r.id for r in await conn.execute(text("SELECT id FROM agents ORDER BY id"))]
        return [await _agent_out(conn, agent_id) for agent_id in ids]


@router.put(
    "/agents/{agent_id}",
    response_model=AgentOut,
    tags=["agents"],
    summary="Create or change an agent: roles/skills, levels, capacity per channel (supervisor)",
)
async def put_agent(
    agent_id: str, body: AgentIn, request: Request, user: Principal = Supervisor
) -> AgentOut:
    async with _engine(request).begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO agents (id, name, role, skills, capacity) VALUES (:id, :name, :role, "
                "CAST(:skills AS jsonb), CAST(:capacity AS jsonb)) ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, role = EXCLUDED.role, skills = EXCLUDED.skills, "
                "capacity = EXCLUDED.capacity, updated_at = now()"
            ),
            {
                "id": agent_id,
                "name": body.name,
                "role": body.role,
                "skills": orjson.dumps(body.skills).decode(),
                "capacity": orjson.dumps(body.capacity).decode(),
            },
        )
        out = await _agent_out(conn, agent_id)
    _assigner(request).nudge()
    return out


@router.get("/agents/{agent_id}", response_model=AgentOut, tags=["agents"])
async def get_agent(agent_id: str, request: Request) -> AgentOut:
    async with _engine(request).connect() as conn:
        return await _agent_out(conn, agent_id)


@router.put(
    "/agents/{agent_id}/status",
    response_model=AgentOut,
    tags=["agents"],
    summary="Available, busy, away or offline; available agents get offers",
)
async def set_agent_status(
    agent_id: str, body: AgentStatusIn, request: Request, user: Principal = User
) -> AgentOut:
    require_self_or_supervisor(user, agent_id)
    async with _engine(request).begin() as conn:
        updated = await conn.execute(
            text(
                "UPDATE agents SET status = :s, idle_since = CASE WHEN :s = 'available' AND "
                "status <> 'available' THEN now() ELSE idle_since END, updated_at = now() "
                "WHERE id = :id"
            ),
            {"s": body.status, "id": agent_id},
        )
        if updated.rowcount == 0:
            raise NotFound(f"No agent {agent_id}.")
        out = await _agent_out(conn, agent_id)
    _assigner(request).nudge()
    return out


@router.get(
    "/agents/{agent_id}/offers",
    response_model=list[OfferOut],
    tags=["offers"],
    summary="The agent's pending offers",
)
async def agent_offers(agent_id: str, request: Request, user: Principal = User) -> list[OfferOut]:
    require_self_or_supervisor(user, agent_id)
    async with _engine(request).connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, ticket_id, agent_id, status, offered_at, expires_at, responded_at, "
                "reason FROM offers WHERE agent_id = :a AND status = 'pending' ORDER BY offered_at"
            ),
            {"a": agent_id},
        )
        return [OfferOut(**r._mapping) for r in rows]


# --- offers -------------------------------------------------------------------------------


async def _pending_offer(conn: AsyncConnection, offer_id: uuid.UUID, user: Principal) -> Any:
    offer = (
        await conn.execute(
            text("SELECT id, ticket_id, agent_id, status FROM offers WHERE id = :id FOR UPDATE"),
            {"id": offer_id},
        )
    ).first()
    if offer is None:
        raise NotFound(f"No offer {offer_id}.")
    if user.subject != offer.agent_id:  # supervisors too: only the agent answers an offer
        if not user.is_supervisor:  # another agent's offer is none of this agent's business
            raise NotFound(f"No offer {offer_id}.")
        raise Forbidden(f"Offer {offer_id} was made to {offer.agent_id}, not {user.subject}.")
    if offer.status != "pending":
        raise Conflict(
            f"Offer {offer_id} is {offer.status}, no longer pending.",
            slug="offer-not-pending",
            extra={"offer_status": offer.status},
        )
    return offer


@router.post(
    "/offers/{offer_id}/accept",
    response_model=TicketOut,
    tags=["offers"],
    summary="Accept an offer: the ticket is the agent's (its owner if first)",
)
async def accept_offer(offer_id: uuid.UUID, request: Request, user: Principal = User) -> TicketOut:
    async with _engine(request).begin() as conn:
        offer = await _pending_offer(conn, offer_id, user)
        ticket = await get_ticket(conn, offer.ticket_id, lock=True)
        stale = ticket.status != "assigned" or ticket.assignee_agent_id != offer.agent_id
        if stale:
            # The ticket moved on while this accept waited for it (its change left this offer,
            # which the accept held, to it): the offer is void, not a claim on the ticket.
            await conn.execute(
                text(
                    "UPDATE offers SET status = 'rescinded', responded_at = now(), "
                    "reason = 'the ticket moved on' WHERE id = :id"
                ),
                {"id": offer_id},
            )
        else:
            await _accept(conn, offer, ticket)
    if stale:
        raise Conflict(
            f"Offer {offer_id} no longer holds ticket {ticket.id} ({ticket.status}).",
            slug="offer-not-pending",
            extra={"offer_status": "rescinded", "ticket_status": ticket.status},
        )
    return TicketOut(**ticket.__dict__)


async def _accept(conn: AsyncConnection, offer: Any, ticket: Ticket) -> None:
    await conn.execute(
        text("UPDATE offers SET status = 'accepted', responded_at = now() WHERE id = :id"),
        {"id": offer.id},
    )
    await change_status(
        conn,
        ticket,
        "accept",
        actor=f"agent:{offer.agent_id}",
        reason="offer accepted",
        extra={
            "owner_agent_id": ticket.owner_agent_id or offer.agent_id,
            "assignee_agent_id": offer.agent_id,
        },
    )


@router.post(
    "/offers/{offer_id}/decline",
    response_model=OfferOut,
    tags=["offers"],
    summary="Decline an offer with a reason: the ticket goes to the next agent",
)
async def decline_offer(
    offer_id: uuid.UUID, body: DeclineIn, request: Request, user: Principal = User
) -> OfferOut:
    async with _engine(request).begin() as conn:
        offer = await _pending_offer(conn, offer_id, user)
        ticket = await get_ticket(conn, offer.ticket_id, lock=True)
        row = (
            await conn.execute(
                text(
                    "UPDATE offers SET status = 'declined', responded_at = now(), reason = :r "
                    "WHERE id = :id RETURNING id, ticket_id, agent_id, status, offered_at, "
                    "expires_at, responded_at, reason"
                ),
                {"id": offer_id, "r": body.reason},
            )
        ).one()
        await change_status(
            conn,
            ticket,
            "queue",
            actor=f"agent:{offer.agent_id}",
            reason=f"offer declined: {body.reason}",
        )
    _assigner(request).nudge()
    return OfferOut(**row._mapping)


# --- tickets ------------------------------------------------------------------------------


async def _readable_ticket(
    conn: AsyncConnection, ticket_id: uuid.UUID, user: Principal, *, lock: bool = False
) -> Ticket:
    """The ticket if this user may read it: a ticket an agent may not read is a 404, as if it
    did not exist, so its existence does not leak either (`router.db.tickets.READABLE_BY_AGENT`)."""
    ticket = await get_ticket(conn, ticket_id, lock=lock)
    if not user.is_supervisor and not await agent_may_read(conn, ticket, user.subject):
        raise TicketNotFound(f"No ticket {ticket_id}.")
    return ticket


async def _ticket_for(conn: AsyncConnection, ticket_id: uuid.UUID, user: Principal) -> Ticket:
    """The ticket, locked for a change this user may make (404 before 403: an agent learns
    nothing about tickets that do not exist or that they may not read)."""
    ticket = await _readable_ticket(conn, ticket_id, user, lock=True)
    require_on_ticket(user, ticket.assignee_agent_id, ticket.owner_agent_id)
    return ticket


def _cursor(ticket: Ticket) -> str:
    raw = orjson.dumps([ticket.opened_at.isoformat(), str(ticket.id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ticket_id = orjson.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(ticket_id)
    except (ValueError, TypeError) as exc:
        raise Problem(
            "The cursor is not one this API gave out.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="query.cursor", message="invalid cursor", type="value_error")],
        ) from exc


@router.get(
    "/tickets",
    response_model=TicketPage,
    tags=["tickets"],
    summary="Tickets, newest first, filtered; page with `cursor`",
    description="A supervisor sees every ticket; an agent only those they may read: assigned "
    "to or owned by them, or waiting in a queue they serve.",
)
async def list_tickets(
    request: Request,
    user: Principal = User,
    status: str | None = Query(default=None, pattern="^[a-z_]+(,[a-z_]+)*$"),
    queue_id: str | None = None,
    agent_id: str | None = Query(default=None, description="assignee or owner"),
    customer_id: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
) -> TicketPage:
    where, params = ["true"], {"limit": limit + 1}
    if not user.is_supervisor:
        where.append(READABLE_BY_AGENT)  # in the query, so every page is full and in order
        params["reader"] = user.subject  # type: ignore[assignment]
    if status:
        where.append("status = ANY(:statuses)")
        params["statuses"] = status.split(",")  # type: ignore[assignment]
    if queue_id:
        where.append("queue_id = :queue")
        params["queue"] = queue_id  # type: ignore[assignment]
    if agent_id:
        where.append("(assignee_agent_id = :agent OR owner_agent_id = :agent)")
        params["agent"] = agent_id  # type: ignore[assignment]
    if customer_id:
        where.append("customer_id = :customer")
        params["customer"] = customer_id  # type: ignore[assignment]
    if cursor:
        at, last_id = _decode_cursor(cursor)
        where.append("(opened_at, id) < (:at, :last)")
        params.update(at=at, last=last_id)  # type: ignore[arg-type]
    async with _engine(request).connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY opened_at DESC, id DESC LIMIT :limit"
            ),
            params,
        )
        tickets = [Ticket.from_row(r) for r in rows]
    more = len(tickets) > limit
    tickets = tickets[:limit]
    return TicketPage(
        items=[TicketOut(**t.__dict__) for t in tickets],
        next_cursor=_cursor(tickets[-1]) if more else None,
    )


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketDetail,
    tags=["tickets"],
    summary="One ticket with its contacts, history and why it went to whom",
    description="A ticket an agent may not read (not assigned to or owned by them, not waiting "
    "in a queue they serve) is a 404, like one that does not exist.",
)
async def get_ticket_detail(
    ticket_id: uuid.UUID, request: Request, user: Principal = User
) -> TicketDetail:
    async with _engine(request).connect() as conn:
        ticket = await _readable_ticket(conn, ticket_id, user)
        contacts = await conn.execute(
            text(
                "SELECT contact_id, channel, received_at, subject, text FROM ticket_contacts "
                "WHERE ticket_id = :t ORDER BY received_at"
            ),
            {"t": ticket_id},
        )
        history = await conn.execute(
            text(
                "SELECT at, actor, action, from_status, to_status, reason, data "
                "FROM ticket_history WHERE ticket_id = :t ORDER BY id"
            ),
            {"t": ticket_id},
        )
        decisions = await conn.execute(
            text(
                "SELECT id, at, policy_version, policy_step, queue_id, strategy, chosen_agent_id, "
                "candidates, tie_breaker FROM routing_decisions WHERE ticket_id = :t ORDER BY at"
            ),
            {"t": ticket_id},
        )
        offers = await conn.execute(
            text(
                "SELECT id, ticket_id, agent_id, status, offered_at, expires_at, responded_at, "
                "reason FROM offers WHERE ticket_id = :t ORDER BY offered_at"
            ),
            {"t": ticket_id},
        )
        return TicketDetail(
            **ticket.__dict__,
            contacts=[dict(r._mapping) for r in contacts],
            history=[{**r._mapping, "data": _obj(r.data)} for r in history],
            routing_decisions=[{**r._mapping, "candidates": _obj(r.candidates)} for r in decisions],
            offers=[OfferOut(**r._mapping) for r in offers],
        )


@router.post(
    "/tickets/{ticket_id}/reply",
    response_model=TicketOut,
    tags=["tickets"],
    summary="An agent answered the customer (the first answer is the first response)",
)
async def reply(
    ticket_id: uuid.UUID, body: ReplyIn, request: Request, user: Principal = User
) -> TicketOut:
    require_self_or_supervisor(user, body.agent_id)
    now = datetime.now(UTC)
    async with _engine(request).begin() as conn:
        ticket = await _ticket_for(conn, ticket_id, user)
        replied = TicketReplied(
            ticket_id=ticket_id,
            agent_id=body.agent_id,
            channel=body.channel or ticket.channel,  # type: ignore[arg-type]
            first_response=ticket.first_response_at is None,
            at=now,
        )
        await change_status(
            conn,
            ticket,
            "reply",
            actor=f"agent:{body.agent_id}",
            reason="replied",
            extra={"first_response_at": ticket.first_response_at or now},
            also=[replied],
        )
    return TicketOut(**ticket.__dict__)


@router.post(
    "/tickets/{ticket_id}/pending",
    response_model=TicketOut,
    tags=["tickets"],
    summary="Wait for the customer (pauses the resolution clock)",
)
async def set_pending(
    ticket_id: uuid.UUID, body: ReasonIn, request: Request, user: Principal = User
) -> TicketOut:
    async with _engine(request).begin() as conn:
        ticket = await _ticket_for(conn, ticket_id, user)
        await change_status(
            conn, ticket, "set_pending_customer", actor=user.actor, reason=body.reason
        )
    return TicketOut(**ticket.__dict__)


@router.post(
    "/tickets/{ticket_id}/resolve",
    response_model=TicketOut,
    tags=["tickets"],
    summary="Resolve with a resolution code and whether it was solved on first contact",
)
async def resolve(
    ticket_id: uuid.UUID, body: ResolveIn, request: Request, user: Principal = User
) -> TicketOut:
    now = datetime.now(UTC)
    async with _engine(request).begin() as conn:
        ticket = await _ticket_for(conn, ticket_id, user)
        # Resolving changes none of the fields the event carries but the ones given here.
        resolved = TicketResolved(
            ticket_id=ticket.id,
            customer_id=ticket.customer_id,
            agent_id=ticket.assignee_agent_id,
            owner_agent_id=ticket.owner_agent_id,
            channel=ticket.channel,  # type: ignore[arg-type]
            queue_id=ticket.queue_id,
            category=ticket.category,
            priority=ticket.priority,  # type: ignore[arg-type]
            language=ticket.language,
            resolution_code=body.resolution_code,
            first_contact_resolution=body.first_contact_resolution,
            opened_at=ticket.opened_at,
            resolved_at=now,
        )
        await change_status(
            conn,
            ticket,
            "resolve",
            actor=user.actor,
            reason=body.resolution_code,
            extra={
                "resolved_at": now,
                "resolution_code": body.resolution_code,
                "first_contact_resolution": body.first_contact_resolution,
            },
            also=[resolved],
        )
    _assigner(request).nudge()  # the agent has capacity again
    return TicketOut(**ticket.__dict__)


@router.post("/tickets/{ticket_id}/reopen", response_model=TicketOut, tags=["tickets"])
async def reopen(
    ticket_id: uuid.UUID, body: ReasonIn, request: Request, user: Principal = User
) -> TicketOut:
    async with _engine(request).begin() as conn:
        ticket = await _ticket_for(conn, ticket_id, user)
        await change_status(conn, ticket, "reopen", actor=user.actor, reason=body.reason)
    _assigner(request).nudge()
    return TicketOut(**ticket.__dict__)


@router.post(
    "/tickets/{ticket_id}/close",
    response_model=TicketOut,
    tags=["tickets"],
    summary="Close (e.g. solved, spam, duplicate)",
)
async def close(
    ticket_id: uuid.UUID, body: ReasonIn, request: Request, user: Principal = User
) -> TicketOut:
    now = datetime.now(UTC)
    async with _engine(request).begin() as conn:
        ticket = await _ticket_for(conn, ticket_id, user)
        await change_status(
            conn,
            ticket,
            "close",
            actor=user.actor,
            reason=body.reason,
            extra={"closed_at": now},
        )
        await publish(
            conn,
            TicketClosed(ticket_id=ticket.id, actor=user.actor, reason=body.reason, at=now),
        )
    _assigner(request).nudge()
    return TicketOut(**ticket.__dict__)


@router.post(
    "/tickets/{ticket_id}/transfer",
    response_model=TicketOut,
    tags=["tickets"],
    summary="Transfer to another queue (or agent); the owner stays the owner",
)
async def transfer(
    ticket_id: uuid.UUID, body: TransferIn, request: Request, user: Principal = User
) -> TicketOut:
    if (body.to_queue_id is None) == (body.to_agent_id is None):
        raise Problem(
            "Give exactly one of to_queue_id and to_agent_id.",
            status=422,
            slug="validation-error",
            errors=[
                FieldError(
                    field="body.to_queue_id",
                    message="one of to_queue_id, to_agent_id",
                    type="value_error",
                )
            ],
        )
    now = datetime.now(UTC)
    async with _engine(request).begin() as conn:
        ticket = await _ticket_for(conn, ticket_id, user)
        from_agent = ticket.assignee_agent_id
        if body.to_queue_id is not None:
            exists = (
                await conn.execute(
                    text("SELECT 1 FROM queues WHERE id = :q"), {"q": body.to_queue_id}
                )
            ).first()
            if not exists:
                raise NotFound(f"No queue {body.to_queue_id}.")
            await change_status(
                conn,
                ticket,
                "transfer",
                actor=user.actor,
                reason=body.reason,
                extra={"queue_id": body.to_queue_id, "step_timeout_at": None},
            )
        else:
            exists = (
                await conn.execute(
                    # Locked as the assigner locks it: a round counting this agent's load
                    # waits for the transfer, and counts it.
                    text("SELECT 1 FROM agents WHERE id = :a FOR NO KEY UPDATE"),
                    {"a": body.to_agent_id},
                )
            ).first()
            if not exists:
                raise NotFound(f"No agent {body.to_agent_id}.")
            await change_status(
                conn,
                ticket,
                "transfer",
                actor=user.actor,
                reason=body.reason,
                to_agent=True,
                extra={"assignee_agent_id": body.to_agent_id},
            )
        await add_history(
            conn,
            ticket.id,
            at=now,
            actor=user.actor,
            action="transfer",
            reason=body.reason,
            data={
                "from_agent": from_agent,
                "to_agent": body.to_agent_id,
                "to_queue": body.to_queue_id,
                "owner": ticket.owner_agent_id,
            },
        )
        await publish(
            conn,
            TicketTransferred(
                ticket_id=ticket.id,
                from_agent_id=from_agent,
                to_agent_id=body.to_agent_id,
                to_queue_id=body.to_queue_id,
                owner_agent_id=ticket.owner_agent_id,
                reason=body.reason,
                at=now,
            ),
        )
    _assigner(request).nudge()
    return TicketOut(**ticket.__dict__)


# --- routing policy -----------------------------------------------------------------------


@router.get(
    "/routing-policy",
    response_model=PolicyOut,
    tags=["routing policy"],
    summary="The routing policy in force: ordered steps, condition → queue",
)
async def get_policy(request: Request) -> PolicyOut:
    async with _engine(request).connect() as conn:
        policy = await load_policy(conn)
    return PolicyOut(
        version=policy.version, steps=[PolicyStepIn(**step_document(s)) for s in policy.steps]
    )


@router.put(
    "/routing-policy",
    response_model=PolicyOut,
    tags=["routing policy"],
    summary="Replace the policy: a new version, in force at once on every replica",
)
async def put_policy(body: PolicyIn, request: Request, user: Principal = Supervisor) -> PolicyOut:
    steps = [s.model_dump() for s in body.steps]
    try:
        policy_from_documents(0, steps)
    except InvalidPolicy as exc:
        index = next((i for i, s in enumerate(steps) if s["id"] == exc.step_id), None)
        field = f"body.steps.{index}.condition" if index is not None else "body.steps"
        raise Problem(
            str(exc),
            status=422,
            slug="validation-error",
            errors=[FieldError(field=field, message=str(exc), type="invalid_policy")],
            extra={"position": getattr(exc, "position", None)},
        ) from None
    async with _engine(request).begin() as conn:
        known = {r.id for r in await conn.execute(text("SELECT id FROM queues"))}
        for i, step in enumerate(steps):
            if step["queue_id"] not in known:
                raise Problem(
                    f"Step {step['id']} routes to unknown queue {step['queue_id']}.",
                    status=422,
                    slug="validation-error",
                    errors=[
                        FieldError(
                            field=f"body.steps.{i}.queue_id",
                            message="unknown queue",
                            type="unknown_queue",
                        )
                    ],
                )
        policy = await save_policy(conn, steps, user.actor)
    cache: PolicyCache = request.app.state.runtime.extras["policies"]
    cache.invalidate()
    return PolicyOut(version=policy.version, steps=body.steps)


# --- classification rules -----------------------------------------------------------------


@router.get(
    "/classification-rules",
    response_model=ClassificationRulesOut,
    tags=["classification rules"],
    summary="The classification rules in force (category, priority, queue hint), in order",
)
async def get_rules(request: Request) -> ClassificationRulesOut:
    async with _engine(request).connect() as conn:
        current = await load_rules(conn)
    return ClassificationRulesOut(
        version=current.version,
        created_by=current.created_by,
        rules=[ClassificationRuleIn(**rule_document(r)) for r in current.rules],
    )


@router.put(
    "/classification-rules",
    response_model=ClassificationRulesOut,
    tags=["classification rules"],
    summary="Replace the classification rules: a new version, for tickets opened from now on "
    "(supervisor)",
)
async def put_rules(
    body: ClassificationRulesIn, request: Request, user: Principal = Supervisor
) -> ClassificationRulesOut:
    documents = [r.model_dump() for r in body.rules]
    try:
        rules_from_documents(documents)
    except InvalidRule as exc:
        raise Problem(
            f"Rule {documents[exc.index]['id']} is invalid: {exc.message}",
            status=422,
            slug="validation-error",
            errors=[
                FieldError(
                    field=f"body.rules.{exc.index}.{exc.field}",
                    message=exc.message,
                    type="invalid_rule",
                )
            ],
        ) from None
    async with _engine(request).begin() as conn:
        saved = await save_rules(conn, documents, user.actor)
    cache: RulesCache = request.app.state.runtime.extras["rules"]
    cache.invalidate()
    return ClassificationRulesOut(version=saved.version, created_by=user.actor, rules=body.rules)
