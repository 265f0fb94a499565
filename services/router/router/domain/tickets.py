"""A ticket and what each action does to it: the new field values, the history rows and the
events, decided without I/O (`TicketChange`). The lifecycle table says which action is allowed
(`router.domain.lifecycle`); this module adds the side rules (a reply takes an offered ticket,
a queued ticket has no assignee and a fresh `queued_at`, a reopened ticket goes back to its
owner when the owner is available) and the events each action publishes. A unit of work
writes a change (`router.db.tickets.SqlTicketsUnitOfWork`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from ccshared.events.payloads import (
    Channel,
    MessageOutbound,
    Priority,
    SlaDeadlineChanged,
    SlaEscalated,
    TicketClosed,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    TicketStatus,
    TicketStatusChanged,
    TicketTransferred,
)
from router.domain.classification import PRIORITY_RANK, TicketFacts
from router.domain.lifecycle import Action, transition
from router.domain.policy import (
    RoutingPolicy,
    UnknownStep,
    early_overflow,
    next_step_after_timeout,
)
from router.domain.prediction import BreachForecast

ROUTER = "router"  # the actor and producer of what the router does by itself
SLA = "sla"  # the actor of escalations
ESCALATION_QUEUE = "escalations"


@dataclass
class Ticket:
    id: uuid.UUID
    customer_id: uuid.UUID
    channel: Channel
    status: TicketStatus
    category: str
    priority: Priority
    language: str | None
    segment: str | None
    queue_id: str | None
    owner_agent_id: str | None
    assignee_agent_id: str | None
    classification: dict[str, Any]
    policy_version: int | None
    policy_step: str | None
    step_timeout_at: datetime | None
    sla_deadline: datetime | None
    follow_up_of: uuid.UUID | None
    resolution_code: str | None
    first_contact_resolution: bool | None
    opened_at: datetime
    queued_at: datetime | None
    last_contact_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    # What lists show without reading contacts (`router.domain.summary`), set at opening.
    subject_line: str | None = None
    customer_name: str | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x, per ticket
class HistoryEntry:
    action: str
    actor: str
    at: datetime
    from_status: TicketStatus | None = None
    to_status: TicketStatus | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OfferSettlement:
    """What becomes of the ticket's pending offers: `accepted` (its agent answered the
    ticket) or `rescinded` (the ticket left the offered state or went to someone else); only
    those of `agent_id` if given."""

    status: Literal["accepted", "rescinded"]
    reason: str
    agent_id: str | None


@dataclass(slots=True)
class TicketChange:
    """One action's effect on one ticket: column values, history rows, events in order."""

    ticket_id: uuid.UUID
    at: datetime
    sets: dict[str, Any]
    history: list[HistoryEntry]
    events: list[BaseModel]
    offers: OfferSettlement | None = None

    @property
    def to_status(self) -> TicketStatus:
        status: TicketStatus = self.sets["status"]
        return status


def change(
    ticket: Ticket,
    action: Action,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    owner_available: bool = False,
    to_agent: bool = False,
    extra: dict[str, Any] | None = None,
    also: Sequence[BaseModel] = (),
) -> TicketChange:
    """The change a lifecycle action makes to the ticket, or `InvalidTransition`. `extra`:
    column values of the caller's; `also`: events of the caller's, after the change's own."""
    new_status = transition(
        ticket.status, action, owner_available=owner_available, to_agent=to_agent
    )
    sets: dict[str, Any] = {"status": new_status, **(extra or {})}
    # Answering an offered ticket takes it, as accepting the offer does: the offer counts as
    # accepted and the first agent to take a ticket owns it (first-contact ownership).
    taken_by_reply = (
        ticket.status == "assigned" and action == "reply" and new_status == "in_progress"
    )
    if taken_by_reply and ticket.owner_agent_id is None:
        sets.setdefault("owner_agent_id", ticket.assignee_agent_id)
    if new_status == "queued" and ticket.status != "queued":
        sets.update(queued_at=at, assignee_agent_id=None)
    if action == "reopen":
        sets.update(resolved_at=None, closed_at=None)
        if new_status == "in_progress":
            sets["assignee_agent_id"] = ticket.owner_agent_id
    offers = None
    if ticket.status == "assigned" and action != "accept":
        offers = _offer_settlement(ticket, action, actor, taken_by_reply, sets)
    events: list[BaseModel] = []
    if action == "reopen":
        events.append(TicketReopened(ticket_id=ticket.id, actor=actor, reason=reason, at=at))
    if new_status != ticket.status:
        events.append(
            TicketStatusChanged(
                ticket_id=ticket.id,
                from_status=ticket.status,
                to_status=new_status,
                actor=actor,
                reason=reason,
                at=at,
            )
        )
    events.extend(also)
    entry = HistoryEntry(action, actor, at, ticket.status, new_status, reason)
    return TicketChange(ticket.id, at, sets, [entry], events, offers)


def _offer_settlement(
    ticket: Ticket, action: str, actor: str, taken_by_reply: bool, sets: dict[str, Any]
) -> OfferSettlement | None:
    """An offered ticket changes by something other than the offer's acceptance. If its agent
    answered it (a reply starts the work), the offer counts as accepted; if it leaves the
    offered state or goes to someone else (closed, transferred, moved by an escalation), the
    offer is void: rescinded, no longer shown to its agent nor acceptable. A decline or a
    timeout has answered the offer already, so nothing is pending then."""
    assignee = ticket.assignee_agent_id
    if taken_by_reply:
        return OfferSettlement("accepted", "the agent answered the ticket", assignee)
    if sets["status"] == "assigned" and sets.get("assignee_agent_id", assignee) == assignee:
        return None  # still on offer to the same agent
    return OfferSettlement("rescinded", f"{action} by {actor}", None)


def apply(ticket: Ticket, change: TicketChange) -> None:
    """The ticket as the change leaves it (in memory)."""
    for column, value in change.sets.items():
        setattr(ticket, column, value)


def customer_contact(
    ticket: Ticket,
    added: BaseModel,
    reason: str,
    at: datetime,
    *,
    reopens: bool,
    owner_available: bool = False,
) -> TicketChange | None:
    """A customer's contact joining a stored ticket: it reopens a resolved one (as threading
    decided), takes one out of waiting for the customer, or changes no status (None; the
    contact's event `added` is then the caller's to write). A status change publishes `added`
    after its own events."""
    if reopens:
        action: Action = "reopen"
    elif ticket.status == "pending_customer":
        action, reason = "customer_replied", "the customer answered"
    else:
        return None
    return change(
        ticket,
        action,
        actor=ROUTER,
        at=at,
        reason=reason,
        owner_available=owner_available,
        also=[added],
    )


# --- the actions of agents and supervisors ------------------------------------------------


def accept(ticket: Ticket, agent_id: str, at: datetime) -> TicketChange:
    return change(
        ticket,
        "accept",
        actor=f"agent:{agent_id}",
        at=at,
        reason="offer accepted",
        extra={
            "owner_agent_id": ticket.owner_agent_id or agent_id,
            "assignee_agent_id": agent_id,
        },
    )


def decline(ticket: Ticket, agent_id: str, reason: str, at: datetime) -> TicketChange:
    return change(
        ticket, "queue", actor=f"agent:{agent_id}", at=at, reason=f"offer declined: {reason}"
    )


def reply(
    ticket: Ticket,
    agent_id: str,
    channel: Channel | None,
    at: datetime,
    *,
    message_id: uuid.UUID | None = None,
    outbound: MessageOutbound | None = None,
) -> TicketChange:
    """An agent answered the customer; the first answer is the first response. With a
    message (the conversation's reply), `ticket.replied` names it and `outbound` (what intake
    must deliver) follows it in the same transaction."""
    replied = TicketReplied(
        ticket_id=ticket.id,
        agent_id=agent_id,
        channel=channel or ticket.channel,
        first_response=ticket.first_response_at is None,
        at=at,
        message_id=message_id,
    )
    return change(
        ticket,
        "reply",
        actor=f"agent:{agent_id}",
        at=at,
        reason="replied",
        extra={"first_response_at": ticket.first_response_at or at},
        also=[replied] if outbound is None else [replied, outbound],
    )


def resolve(
    ticket: Ticket, actor: str, code: str, first_contact_resolution: bool, at: datetime
) -> TicketChange:
    # Resolving changes none of the fields the event carries but the ones given here.
    resolved = TicketResolved(
        ticket_id=ticket.id,
        customer_id=ticket.customer_id,
        agent_id=ticket.assignee_agent_id,
        owner_agent_id=ticket.owner_agent_id,
        channel=ticket.channel,
        queue_id=ticket.queue_id,
        category=ticket.category,
        priority=ticket.priority,
        language=ticket.language,
        resolution_code=code,
        first_contact_resolution=first_contact_resolution,
        opened_at=ticket.opened_at,
        resolved_at=at,
    )
    return change(
        ticket,
        "resolve",
        actor=actor,
        at=at,
        reason=code,
        extra={
            "resolved_at": at,
            "resolution_code": code,
            "first_contact_resolution": first_contact_resolution,
        },
        also=[resolved],
    )


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """What first-contact resolution is decided by, read from a ticket's rows."""

    customer_contacts: int
    transferred_or_reopened: bool


def solved_on_first_contact(ticket: Ticket, history: ContactHistory) -> bool:
    """The first-contact-resolution flag when the agent does not give it: the customer wrote
    once (one contact: no "any update?", no second call), and the ticket was neither
    transferred (by a user or an escalation) nor reopened, nor is it a follow-up of an
    earlier ticket (the customer had to come back, or was called back)."""
    return (
        history.customer_contacts == 1
        and not history.transferred_or_reopened
        and ticket.follow_up_of is None
    )


def close(ticket: Ticket, actor: str, reason: str | None, at: datetime) -> TicketChange:
    closed = TicketClosed(ticket_id=ticket.id, actor=actor, reason=reason, at=at)
    return change(
        ticket, "close", actor=actor, at=at, reason=reason, extra={"closed_at": at}, also=[closed]
    )


def transfer(
    ticket: Ticket,
    actor: str,
    reason: str,
    at: datetime,
    *,
    to_queue_id: str | None = None,
    to_agent_id: str | None = None,
) -> TicketChange:
    """To another queue (back to waiting) or to a named agent (offered); the owner stays."""
    if to_agent_id is not None:
        extra: dict[str, Any] = {"assignee_agent_id": to_agent_id}
    else:
        extra = {"queue_id": to_queue_id, "step_timeout_at": None}
    transferred = TicketTransferred(
        ticket_id=ticket.id,
        from_agent_id=ticket.assignee_agent_id,
        to_agent_id=to_agent_id,
        to_queue_id=to_queue_id,
        owner_agent_id=ticket.owner_agent_id,
        reason=reason,
        at=at,
    )
    result = change(
        ticket,
        "transfer",
        actor=actor,
        at=at,
        reason=reason,
        to_agent=to_agent_id is not None,
        extra=extra,
        also=[transferred],
    )
    details = {
        "from_agent": ticket.assignee_agent_id,
        "to_agent": to_agent_id,
        "to_queue": to_queue_id,
        "owner": ticket.owner_agent_id,
    }
    result.history.append(HistoryEntry("transfer", actor, at, reason=reason, data=details))
    return result


def routed(
    ticket_id: uuid.UUID,
    *,
    queue_id: str,
    priority: Priority,
    category: str,
    channel: Channel,
    segment: str | None,
    policy_version: int | None,
    policy_step: str | None,
    reason: str | None,
    at: datetime,
) -> TicketRouted:
    """The event of a ticket routed to a queue: opened, overflowed or escalated."""
    return TicketRouted(
        ticket_id=ticket_id,
        queue_id=queue_id,
        priority=priority,
        category=category,
        channel=channel,
        segment=segment,
        policy_version=policy_version,
        policy_step=policy_step,
        reason=reason,
        at=at,
    )


def overflow_change(
    ticket: Ticket, policy: RoutingPolicy, now: datetime, forecast: BreachForecast | None = None
) -> TicketChange | None:
    """A waiting ticket whose routing step timed out: to the policy's next step (its queue,
    priority and timeout); None if there is none (the policy changed since, or the step is
    the last), and the ticket waits where it is. With a `forecast` (the ticket is predicted to
    breach its SLA before it is likely to be offered in its queue), it overflows early, to the
    same step, and the history and `ticket.routed` say why."""
    facts = TicketFacts(channel=ticket.channel, language=ticket.language, segment=ticket.segment)
    attrs = facts.attributes(
        category=ticket.category,
        priority=ticket.priority,
        language=ticket.language,
        queue_hint=ticket.classification.get("queue_hint"),
    )
    step_id = ticket.policy_step or ""
    try:
        if ticket.policy_version != policy.version:
            step = None
        elif forecast is not None:
            step = early_overflow(policy, step_id, attrs, forecast.explain())
        else:
            step = next_step_after_timeout(policy, step_id, attrs)
    except UnknownStep:
        step = None
    if step is None:
        return None
    priority = step.priority_override or ticket.priority
    sets: dict[str, Any] = {
        "queue_id": step.queue_id,
        "policy_step": step.step_id,
        "priority": priority,
        "priority_rank": PRIORITY_RANK[priority],
        "step_timeout_at": now + timedelta(seconds=step.timeout_s) if step.timeout_s else None,
    }
    entry = HistoryEntry(
        "overflow",
        ROUTER,
        now,
        reason=step.reason,
        data={"from_queue": ticket.queue_id, "to_queue": step.queue_id}
        | ({"early": True} if forecast is not None else {}),
    )
    event = routed(
        ticket.id,
        queue_id=step.queue_id,
        priority=priority,
        category=ticket.category,
        channel=ticket.channel,
        segment=ticket.segment,
        policy_version=step.policy_version,
        policy_step=step.step_id,
        reason=step.reason,
        at=now,
    )
    return TicketChange(ticket.id, now, sets, [entry], [event])


@dataclass(frozen=True, slots=True)
class NextDeadline:
    """A ticket's next SLA deadline as SLA published it (none: no clock runs)."""

    deadline: datetime | None
    metric: str | None
    version: int


def latest_deadlines(changes: Iterable[SlaDeadlineChanged]) -> dict[uuid.UUID, NextDeadline]:
    """Each ticket's next SLA deadline from a fetch of `sla.deadline_changed`: the highest
    version of each ticket wins, whatever order the events came in."""
    latest: dict[uuid.UUID, NextDeadline] = {}
    for change in changes:
        known = latest.get(change.ticket_id)
        if known is None or change.version > known.version:
            latest[change.ticket_id] = NextDeadline(
                change.next_deadline, change.metric, change.version
            )
    return latest


def escalate(ticket: Ticket, escalated: SlaEscalated, at: datetime) -> list[TicketChange]:
    """An SLA escalation's changes to an open ticket, in order, applied to `ticket` as they
    are decided: a higher priority; a move to the escalation queue (a ticket an agent holds is
    transferred back to waiting first; its owner stays); notifications, recorded in history."""
    why = f"SLA {escalated.metric} escalation level {escalated.level}"
    changes: list[TicketChange] = []

    def record(made: TicketChange) -> None:
        apply(ticket, made)
        changes.append(made)

    new = escalated.raise_priority_to
    raises = new is not None and PRIORITY_RANK[new] < PRIORITY_RANK[ticket.priority]
    if "raise_priority" in escalated.actions and new is not None and raises:
        entry = HistoryEntry(
            "raise_priority", SLA, at, reason=why, data={"from": ticket.priority, "to": new}
        )
        sets: dict[str, Any] = {"priority": new, "priority_rank": PRIORITY_RANK[new]}
        record(TicketChange(ticket.id, at, sets, [entry], []))
    queue = escalated.escalation_queue_id or ESCALATION_QUEUE
    if "move_to_escalation_queue" in escalated.actions and ticket.queue_id != queue:
        if ticket.status != "queued":
            record(change(ticket, "transfer", actor=SLA, at=at, reason=why))
        data = {"from_queue": ticket.queue_id, "to_queue": queue}
        moved = routed(
            ticket.id,
            queue_id=queue,
            priority=ticket.priority,
            category=ticket.category,
            channel=ticket.channel,
            segment=ticket.segment,
            policy_version=ticket.policy_version,
            policy_step=ticket.policy_step,
            reason=why,
            at=at,
        )
        sets = {"queue_id": queue, "step_timeout_at": None}
        entry = HistoryEntry("escalate", SLA, at, reason=why, data=data)
        record(TicketChange(ticket.id, at, sets, [entry], [moved]))
    notes = [
        HistoryEntry(action, SLA, at, reason=why)
        for action in ("notify_supervisor", "notify_manager")
        if action in escalated.actions
    ]
    if notes:
        changes.append(TicketChange(ticket.id, at, {}, notes, []))
    return changes
