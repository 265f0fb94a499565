"""Ticket actions of agents and supervisors, and reading tickets: each action is one unit of
work (the ticket locked for a user who may change it, the domain's change, written with its
history and events), so every action takes the same path."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared import tracing
from ccshared.auth import Principal
from ccshared.events.payloads import Channel, Priority
from ccshared.ids import uuid7
from ccshared.problems import Conflict, FieldError, NotFound, Problem
from ccshared.user_auth import require_on_ticket, require_self_or_supervisor
from router.db import messages as messages_db
from router.db import offers as offers_db
from router.db import tickets as db
from router.db.corrections import Correction
from router.db.tickets import Ticket, TicketNotFound
from router.domain import conversation, corrections, tickets
from router.domain.lifecycle import InvalidTransition
from router.domain.notifications import Notification
from router.domain.policy import RoutingPolicy

T = TypeVar("T")


class TicketsUnitOfWork(Protocol):
    """What a ticket action reads and writes, in one transaction (`async with`):
    `router.db.tickets.SqlTicketsUnitOfWork`, or an in-memory fake in tests."""

    async def __aenter__(self) -> TicketsUnitOfWork: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def ticket(self, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket: ...

    async def agent_may_read(self, ticket: Ticket, agent_id: str) -> bool: ...

    async def agent_available(self, agent_id: str | None) -> bool: ...

    async def queue_exists(self, queue_id: str) -> bool: ...

    async def lock_agent(self, agent_id: str) -> bool: ...

    async def write(self, change: tickets.TicketChange) -> None: ...

    async def traceparent(self, ticket_id: uuid.UUID) -> str | None: ...

    async def contact_history(self, ticket_id: uuid.UUID) -> tickets.ContactHistory: ...

    async def start_wrap_up(self, ticket: Ticket, at: datetime) -> None: ...

    async def last_contact(self, ticket_id: uuid.UUID) -> Any: ...

    async def canned_exists(self, canned_id: uuid.UUID) -> bool: ...

    async def add_message(self, message: conversation.Message) -> None: ...

    async def unknown_agents(self, agent_ids: list[str]) -> list[str]: ...

    async def notify(self, notifications: list[Notification]) -> None: ...

    async def first_contact_text(self, ticket_id: uuid.UUID) -> str: ...

    async def add_correction(self, correction: Correction) -> None: ...


async def readable_ticket(
    uow: TicketsUnitOfWork, ticket_id: uuid.UUID, user: Principal, *, lock: bool = False
) -> Ticket:
    """The ticket if this user may read it: a ticket an agent may not read is a 404, as if it
    did not exist, so its existence does not leak either (`router.db.tickets.READABLE_BY_AGENT`)."""
    ticket = await uow.ticket(ticket_id, lock=lock)
    if not user.is_supervisor and not await uow.agent_may_read(ticket, user.subject):
        raise TicketNotFound(f"No ticket {ticket_id}.")
    return ticket


async def ticket_for_change(
    uow: TicketsUnitOfWork, ticket_id: uuid.UUID, user: Principal
) -> Ticket:
    """The ticket, locked for a change this user may make (404 before 403: an agent learns
    nothing about tickets that do not exist or that they may not read)."""
    ticket = await readable_ticket(uow, ticket_id, user, lock=True)
    require_on_ticket(user, ticket.assignee_agent_id, ticket.owner_agent_id)
    return ticket


def invalid(ticket: Ticket, action: str, exc: InvalidTransition) -> Conflict:
    """The 409 problem of an action the lifecycle refuses, with the domain's explanation."""
    return Conflict(
        str(exc),
        slug="invalid-transition",
        extra={"ticket_status": ticket.status, "action": action},
    )


def decided(ticket: Ticket, decide: Callable[[], T], action: str) -> T:
    """The domain's decision, or the 409 problem of an invalid transition."""
    try:
        return decide()
    except InvalidTransition as exc:
        raise invalid(ticket, action, exc) from None


async def write_in_contacts_trace(
    uow: TicketsUnitOfWork, ticket: Ticket, change: tickets.TicketChange, action: str
) -> None:
    """Write a user's change. When traced, its events continue the trace of the contact that
    opened the ticket (a span `ticket <action>`, child of the router's taking of the contact and
    linked to the user's request): one contact is one trace through its resolution and survey.
    While tracing is off, just the write."""
    if not (tracing.active() and change.events):
        await uow.write(change)
        return
    with tracing.continuing(
        await uow.traceparent(ticket.id),
        f"ticket {action}",
        attributes={"cc.ticket_id": str(ticket.id)},
    ):
        await uow.write(change)


Decide = Callable[[TicketsUnitOfWork, Ticket], Awaitable[tickets.TicketChange]]


async def act(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    action: str,
    decide: Decide,
    nudge: Callable[[], None] | None = None,
) -> Ticket:
    """The one path of every user's ticket action: in one transaction, the ticket locked for
    a user who may change it, the domain's change (`decide`, which may read what it depends
    on first), written with its history and events; then `nudge` (the assignment loop), and
    the ticket as the change left it. An invalid change is a 409 and writes nothing."""
    async with uow:
        ticket = await ticket_for_change(uow, ticket_id, user)
        try:
            change = await decide(uow, ticket)
        except InvalidTransition as exc:
            raise invalid(ticket, action, exc) from None
        await write_in_contacts_trace(uow, ticket, change, action)
        tickets.apply(ticket, change)
    if nudge is not None:
        nudge()
    return ticket


def field_problem(field: str, message: str, *, status: int = 422) -> Problem:
    """A 422 (or `status`) problem naming the one field at fault."""
    slug = "payload-too-large" if status == 413 else "validation-error"
    kind = "too_large" if status == 413 else "value_error"
    return Problem(
        f"{field}: {message}",
        status=status,
        slug=slug,
        errors=[FieldError(field=field, message=message, type=kind)],
    )


def checked_text(text: str, rules: conversation.ConversationRules) -> str:
    """The text of a reply or note, or its problem: blank is a 422, too large a 413, both
    naming `body.text`."""
    try:
        return conversation.checked_text(text, rules)
    except conversation.TextRefused as exc:
        raise field_problem("body.text", str(exc), status=413 if exc.too_large else 422) from None


async def reply(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    agent_id: str | None,
    channel: Channel | None,
    text: str | None = None,
    canned_response_id: uuid.UUID | None = None,
    rules: conversation.ConversationRules | None = None,
) -> Ticket:
    """An agent's answer, in their own name (the token's, unless they name themself); a
    supervisor answers in the name of the agent they name (a supervisor is no agent: no
    name is a 422). With `text`, the reply is stored in the conversation and published for
    delivery (`message.outbound`, after `ticket.replied` naming it, in the same transaction);
    without, only that the agent answered is recorded (e.g. by phone, outside the platform).
    Refused before anything is stored: a ticket not theirs (403/404), a blank or oversized
    text (422/413), an unknown canned response (422), a messaging channel's closed reply
    window (409)."""
    if agent_id is None and user.is_supervisor:
        raise Problem(
            "A supervisor replies in an agent's name: give agent_id.",
            status=422,
            slug="validation-error",
            errors=[
                FieldError(
                    field="body.agent_id",
                    message="required when a supervisor replies",
                    type="missing",
                )
            ],
        )
    replier = agent_id or user.subject
    require_self_or_supervisor(user, replier)
    rules = rules or conversation.ConversationRules()
    if text is not None:
        text = checked_text(text, rules)
    elif canned_response_id is not None:
        raise field_problem("body.text", "a reply with a canned response needs its text")
    now = datetime.now(UTC)

    async def decide(uow: TicketsUnitOfWork, ticket: Ticket) -> tickets.TicketChange:
        if text is None:
            return tickets.reply(ticket, replier, channel, now)
        if canned_response_id is not None and not await uow.canned_exists(canned_response_id):
            raise field_problem(
                "body.canned_response_id", f"no canned response {canned_response_id}"
            )
        on = channel or ticket.channel
        last = await uow.last_contact(ticket.id)
        closed = conversation.reply_window_closed(
            rules.reply_window_hours, on, last.received_at if last else None, now
        )
        if closed is not None:
            raise reply_window_problem(on, rules.reply_window_hours[on], closed)
        message = conversation.reply_message(
            uuid7(),
            ticket.id,
            author=f"agent:{replier}",
            channel=on,
            text=text,
            at=now,
            canned_response_id=canned_response_id,
            reply_to_contact_id=last.contact_id if last else None,
        )
        await uow.add_message(message)
        to_deliver = conversation.outbound(
            message,
            customer_id=ticket.customer_id,
            subject=(last.subject if last and last.subject else ticket.subject_line),
            language=ticket.language,
        )
        return tickets.reply(
            ticket, replier, channel, now, message_id=message.id, outbound=to_deliver
        )

    return await act(uow, ticket_id, user, "reply", decide)


def reply_window_problem(channel: str, hours: float, closed_for: timedelta) -> Conflict:
    minutes = int(closed_for.total_seconds() // 60)
    return Conflict(
        f"The {channel} channel accepts a reply only within {hours:g} hours of the customer's "
        f"last message; that window closed {minutes} minutes ago. Offer a call-back instead "
        "(a reply on the phone channel), or wait for the customer to write again.",
        slug="reply-window-closed",
        extra={"channel": channel, "window_hours": hours, "closed_minutes_ago": minutes},
    )


async def set_pending(
    uow: TicketsUnitOfWork, ticket_id: uuid.UUID, user: Principal, reason: str | None
) -> Ticket:
    now = datetime.now(UTC)

    async def decide(_: TicketsUnitOfWork, ticket: Ticket) -> tickets.TicketChange:
        return tickets.change(
            ticket, "set_pending_customer", actor=user.actor, at=now, reason=reason
        )

    return await act(uow, ticket_id, user, "set_pending_customer", decide)


async def resolve(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    code: str,
    first_contact_resolution: bool | None,
    nudge: Callable[[], None] | None = None,
) -> Ticket:
    """Resolved: the agent has capacity again (`nudge`), after the queue's wrap-up if it has
    one (the agent in `wrap_up` until then). Whether it was solved on first contact is the
    user's word if given, else the router's (`tickets.solved_on_first_contact`, from the
    ticket's contacts and history)."""
    now = datetime.now(UTC)

    async def decide(uow: TicketsUnitOfWork, ticket: Ticket) -> tickets.TicketChange:
        fcr = first_contact_resolution
        if fcr is None:
            fcr = tickets.solved_on_first_contact(ticket, await uow.contact_history(ticket.id))
        change = tickets.resolve(ticket, user.actor, code, fcr, now)
        await uow.start_wrap_up(ticket, now)
        return change

    return await act(uow, ticket_id, user, "resolve", decide, nudge)


async def reopen(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    reason: str | None,
    nudge: Callable[[], None] | None = None,
) -> Ticket:
    """A resolved ticket goes back to its owner if available, else to the queue."""
    now = datetime.now(UTC)

    async def decide(uow: TicketsUnitOfWork, ticket: Ticket) -> tickets.TicketChange:
        owner_available = await uow.agent_available(ticket.owner_agent_id)
        return tickets.change(
            ticket,
            "reopen",
            actor=user.actor,
            at=now,
            reason=reason,
            owner_available=owner_available,
        )

    return await act(uow, ticket_id, user, "reopen", decide, nudge)


async def close(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    reason: str | None,
    nudge: Callable[[], None] | None = None,
) -> Ticket:
    now = datetime.now(UTC)

    async def decide(_: TicketsUnitOfWork, ticket: Ticket) -> tickets.TicketChange:
        return tickets.close(ticket, user.actor, reason, now)

    return await act(uow, ticket_id, user, "close", decide, nudge)


async def transfer(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    reason: str,
    *,
    to_queue_id: str | None,
    to_agent_id: str | None,
    nudge: Callable[[], None] | None = None,
) -> Ticket:
    """To another queue or to an agent (exactly one); the owner stays the owner."""
    if (to_queue_id is None) == (to_agent_id is None):
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

    async def decide(uow: TicketsUnitOfWork, ticket: Ticket) -> tickets.TicketChange:
        if to_queue_id is not None and not await uow.queue_exists(to_queue_id):
            raise NotFound(f"No queue {to_queue_id}.")
        if to_agent_id is not None and not await uow.lock_agent(to_agent_id):
            raise NotFound(f"No agent {to_agent_id}.")
        return tickets.transfer(
            ticket, user.actor, reason, now, to_queue_id=to_queue_id, to_agent_id=to_agent_id
        )

    return await act(uow, ticket_id, user, "transfer", decide, nudge)


async def reclassify(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    *,
    category: str | None,
    priority: Priority | None,
    reason: str | None,
    policy: RoutingPolicy | None,
    nudge: Callable[[], None] | None = None,
) -> Ticket:
    """Correct a ticket's category and/or priority: a supervisor any ticket, an agent a ticket
    they may read (else 404). The ticket changes (history, `ticket.reclassified`; a waiting one
    routed again by `policy`), and the correction is stored as a training label with the text
    the model saw, in the same transaction."""
    if category is None and priority is None:
        raise Problem(
            "Give a category, a priority or both.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="body.category", message="required", type="value_error")],
        )
    now = datetime.now(UTC)
    async with uow:
        ticket = await readable_ticket(uow, ticket_id, user, lock=True)
        text = await uow.first_contact_text(ticket.id)
        change = corrections.reclassify(
            ticket,
            category=category,
            priority=priority,
            actor=user.actor,
            reason=reason,
            at=now,
            text=text,
            policy=policy,
        )
        await write_in_contacts_trace(uow, ticket, change, "reclassify")
        entry = change.history[0].data
        await uow.add_correction(
            Correction(
                ticket_id=ticket.id,
                text=text,
                category=change.sets["category"],
                priority=change.sets["priority"],
                previous_category=ticket.category,
                previous_priority=ticket.priority,
                model_version=entry.get("model_version"),
                corrected_by=user.actor,
                reason=reason,
            )
        )
        tickets.apply(ticket, change)
    if nudge is not None and "queue_id" in change.sets:
        nudge()
    return ticket


# --- reading ------------------------------------------------------------------------------


def cursor_of(ticket: Ticket) -> str:
    return encode_cursor(ticket.opened_at, ticket.id)


def encode_cursor(at: datetime, item_id: uuid.UUID) -> str:
    """An opaque cursor: where a page ended (the last item's time and id)."""
    raw = orjson.dumps([at.isoformat(), str(item_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, last_id = orjson.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(last_id)
    except (ValueError, TypeError) as exc:
        raise Problem(
            "The cursor is not one this API gave out.",
            status=422,
            slug="validation-error",
            errors=[FieldError(field="query.cursor", message="invalid cursor", type="value_error")],
        ) from exc


async def page_of_tickets(
    engine: AsyncEngine,
    user: Principal,
    *,
    limit: int,
    status: str | None,
    queue_id: str | None,
    agent_id: str | None,
    customer_id: uuid.UUID | None,
    cursor: str | None,
) -> tuple[list[Ticket], str | None]:
    """Newest first: a page and the cursor of the next (None: the last page). An agent gets
    only the tickets they may read."""
    before = decode_cursor(cursor) if cursor else None
    async with engine.connect() as conn:
        found = await db.page_of_tickets(
            conn,
            limit=limit + 1,
            reader=None if user.is_supervisor else user.subject,
            statuses=status.split(",") if status else None,
            queue_id=queue_id,
            agent_id=agent_id,
            customer_id=customer_id,
            before=before,
        )
    page = found[:limit]
    return page, cursor_of(page[-1]) if len(found) > limit else None


async def ticket_detail(
    engine: AsyncEngine, ticket_id: uuid.UUID, user: Principal, last_messages: int = 5
) -> tuple[Ticket, dict[str, list[dict[str, Any]]]]:
    """The ticket with its contacts, history, routing decisions, offers and the last messages
    of its conversation."""
    async with engine.connect() as conn:
        uow = db.SqlTicketsUnitOfWork.on(conn)
        ticket = await readable_ticket(uow, ticket_id, user)
        return ticket, {
            "contacts": await db.ticket_contacts(conn, ticket_id),
            "history": await db.ticket_history(conn, ticket_id),
            "routing_decisions": await db.routing_decisions(conn, ticket_id),
            "offers": await offers_db.offers_of_ticket(conn, ticket_id),
            "messages": await messages_db.last_messages(conn, ticket_id, last_messages),
        }
