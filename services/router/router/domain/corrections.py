"""An agent's or supervisor's correction of a ticket's category and priority: the change to
the ticket (its columns, a `reclassify` history entry, `ticket.reclassified`) and, for a ticket
still waiting, the routing policy's step again, which moves it if its queue changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ccshared.events.payloads import Priority, TicketReclassified
from router.domain.classification import TicketFacts
from router.domain.policy import NoMatchingStep, RoutingPolicy, first_matching_step
from router.domain.tickets import HistoryEntry, Ticket, TicketChange, routed


def reclassify(
    ticket: Ticket,
    *,
    category: str | None,
    priority: Priority | None,
    actor: str,
    reason: str | None,
    at: datetime,
    text: str,
    policy: RoutingPolicy | None,
) -> TicketChange:
    """The correction (what is left out stays). A waiting (`queued`) ticket is routed again
    by `policy` with the corrected labels: a different queue moves it (a new `ticket.routed`)."""
    to_category = category or ticket.category
    to_priority = priority or ticket.priority
    model = ticket.classification.get("model") if ticket.classification else None
    model_version = model.get("version") if isinstance(model, dict) else None
    sets: dict[str, Any] = {
        "status": ticket.status,
        "category": to_category,
        "priority": to_priority,
    }
    events: list[BaseModel] = []
    to_queue: str | None = None
    if policy is not None and ticket.status == "queued":
        facts = TicketFacts(
            channel=ticket.channel, text=text, language=ticket.language, segment=ticket.segment
        )
        attrs = facts.attributes(
            category=to_category,
            priority=to_priority,
            language=ticket.language,
            queue_hint=ticket.classification.get("queue_hint"),
        )
        try:
            step = first_matching_step(policy, attrs)
        except NoMatchingStep:
            step = None
        if step is not None and step.queue_id != ticket.queue_id:
            to_queue = step.queue_id
            to_priority = step.priority_override or to_priority
            sets.update(
                priority=to_priority,
                queue_id=to_queue,
                policy_version=step.policy_version,
                policy_step=step.step_id,
                step_timeout_at=at + timedelta(seconds=step.timeout_s) if step.timeout_s else None,
            )
            events.append(
                routed(
                    ticket.id,
                    queue_id=to_queue,
                    priority=to_priority,
                    category=to_category,
                    channel=ticket.channel,
                    segment=ticket.segment,
                    policy_version=step.policy_version,
                    policy_step=step.step_id,
                    reason=f"reclassified by {actor}; {step.reason}",
                    at=at,
                )
            )
    events.insert(
        0,
        TicketReclassified(
            ticket_id=ticket.id,
            from_category=ticket.category,
            to_category=to_category,
            from_priority=ticket.priority,
            to_priority=to_priority,
            actor=actor,
            reason=reason,
            model_version=model_version,
            to_queue_id=to_queue,
            at=at,
        ),
    )
    entry = HistoryEntry(
        "reclassify",
        actor,
        at,
        ticket.status,
        ticket.status,
        reason,
        data={
            "from_category": ticket.category,
            "to_category": to_category,
            "from_priority": ticket.priority,
            "to_priority": to_priority,
            "model_version": model_version,
            "classified_by": ticket.classification.get("category_source"),
            "to_queue": to_queue,
        },
    )
    return TicketChange(ticket.id, at, sets, [entry], events)
