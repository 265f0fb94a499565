"""A contact becoming a new ticket, in named steps without I/O: the facts the contact states
(`facts_of`), their classification (`classify_contact`), the routing policy's step
(`route`), and the ticket with its history and events (`new_ticket`)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel

from ccshared.events.payloads import (
    ContactReceived,
    Priority,
    TicketContactAdded,
    TicketOpened,
    TicketStatusChanged,
)
from ccshared.ids import uuid7
from router.domain.classification import (
    Classification,
    ClassificationRule,
    ModelVerdicts,
    TextModel,
    TicketFacts,
    classify,
)
from router.domain.policy import RoutingPolicy, StepMatch, first_matching_step, routing_attributes
from router.domain.segments import ticket_segment
from router.domain.threading import ContactThread
from router.domain.tickets import ROUTER, HistoryEntry, routed
from router.domain.urgency import EarlierTicket, most_urgent, repeated_from_history


class Rules(Protocol):
    """The classification rules in force and their version (`router.db.rules.RuleSet`)."""

    @property
    def version(self) -> int: ...

    @property
    def rules(self) -> tuple[ClassificationRule, ...]: ...


@dataclass(frozen=True)
class Placement:
    """What a follow-up fixes instead of leaving it to classification and routing: its id,
    the ticket it follows, its category, owner and queue; and why the ticket is opened."""

    ticket_id: uuid.UUID | None = None
    follow_up_of: uuid.UUID | None = None
    category: str | None = None
    owner_agent_id: str | None = None
    queue_id: str | None = None
    reason: str | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x, per ticket
class NewTicket:
    """A new ticket, queued, with its first contact; `history` and `events` in order."""

    id: uuid.UUID
    contact: ContactReceived
    category: str
    category_rule: str | None  # the rule that decided the category (None: the default)
    priority: Priority
    language: str
    segment: str | None
    queue_id: str
    classification: dict[str, Any]
    policy_version: int
    policy_step: str
    step_timeout_at: datetime | None
    routing_reason: str
    follow_up_of: uuid.UUID | None
    opened_at: datetime
    owner_agent_id: str | None
    open_reason: str | None  # why a new ticket: the threading decision's reason

    @property
    def history(self) -> tuple[HistoryEntry, HistoryEntry]:
        """Opened (new), then queued by the policy's step."""
        opened = HistoryEntry(
            "open",
            ROUTER,
            self.opened_at,
            to_status="new",
            reason=self.open_reason,
            data={
                "contact_id": str(self.contact.contact_id),
                "classification": self.category_rule,
                "category_by": self.classification.get("category_source"),
                "priority_by": self.classification.get("priority_source"),
            },
        )
        queued = HistoryEntry(
            "queue",
            ROUTER,
            self.opened_at,
            from_status="new",
            to_status="queued",
            reason=self.routing_reason,
            data={
                "queue_id": self.queue_id,
                "policy_version": self.policy_version,
                "policy_step": self.policy_step,
            },
        )
        return opened, queued

    @property
    def events(self) -> tuple[BaseModel, ...]:
        """Opened, its status change to queued, routed."""
        return (
            TicketOpened(
                ticket_id=self.id,
                customer_id=self.contact.customer_id,
                contact_id=self.contact.contact_id,
                channel=self.contact.channel,
                category=self.category,
                priority=self.priority,
                language=self.language,
                segment=self.segment,
                queue_id=self.queue_id,
                classification_rule=self.category_rule,
                follow_up_of=self.follow_up_of,
                opened_at=self.opened_at,
                received_at=self.contact.received_at,  # SLA clocks start when the customer wrote
            ),
            TicketStatusChanged(
                ticket_id=self.id,
                from_status="new",
                to_status="queued",
                actor=ROUTER,
                reason=self.routing_reason,
                at=self.opened_at,
            ),
            routed(
                self.id,
                queue_id=self.queue_id,
                priority=self.priority,
                category=self.category,
                channel=self.contact.channel,
                segment=self.segment,
                policy_version=self.policy_version,
                policy_step=self.policy_step,
                reason=self.routing_reason,
                at=self.opened_at,
            ),
        )


def contact_thread(contact: ContactReceived) -> ContactThread:
    t = contact.thread
    return ContactThread(
        channel=contact.channel,
        customer_id=str(contact.customer_id),
        received_at=contact.received_at,
        email_message_id=t.email_message_id,
        email_in_reply_to=t.email_in_reply_to,
        email_references=tuple(t.email_references),
        chat_session_id=t.chat_session_id,
        social_platform=t.social_platform,
        social_post_id=t.social_post_id,
        social_parent_post_id=t.social_parent_post_id,
    )


def facts_of(contact: ContactReceived, registered_segment: str | None = None) -> TicketFacts:
    """`registered_segment`: the customer's segment in the router's copy of the registry."""
    return TicketFacts(
        channel=contact.channel,
        text=contact.text or "",
        subject=contact.subject,
        language=contact.language,
        segment=ticket_segment(registered_segment, contact.metadata),
        metadata=contact.metadata,
    )


def classify_contact(
    facts: TicketFacts,
    rules: Rules,
    category: str | None,
    earlier: Sequence[EarlierTicket] = (),
    now: datetime | None = None,
) -> Classification:
    """By the rules and the model; a given `category` (a follow-up's) overrides theirs. The
    customer's `earlier` tickets raise the priority of a repeated contact (`with_history`)."""
    # The trained classifier beside the rules, if the rule set carries one (RuleSet.model).
    model: TextModel | None = getattr(rules, "model", None)
    result = classify(facts, rules.rules, model)
    if category is not None:
        result = dataclasses.replace(
            result, category=category, category_rule=None, category_source="follow-up"
        )
    if earlier and now is not None:
        result = with_history(result, earlier, now)
    return result


def with_history(
    result: Classification, earlier: Sequence[EarlierTicket], now: datetime
) -> Classification:
    """The priority raised to at least high when the customer's history shows a repeated
    contact about the same problem (`urgency.repeated_from_history`), recorded as a signal
    and a reason (said by the text too, both are kept: two reasons)."""
    signal = repeated_from_history(result.category, earlier, now)
    if signal is None:
        return result
    priority = most_urgent([result.priority, signal.floor])
    source = result.priority_source if priority == result.priority else "signal:repeated"
    return dataclasses.replace(
        result,
        priority=priority,
        priority_source=source,
        signals=(*result.signals, signal),
        priority_reasons=(*result.priority_reasons, signal.reason),
    )


def route(
    policy: RoutingPolicy, facts: TicketFacts, result: Classification, queue_id: str | None
) -> StepMatch:
    """The policy's first matching step; into `queue_id` instead if given (a follow-up goes
    to the earlier ticket's queue, and does not overflow)."""
    step = first_matching_step(policy, routing_attributes(facts, result))
    if queue_id is None:
        return step
    return dataclasses.replace(
        step,
        queue_id=queue_id,
        timeout_s=None,
        reason=f"follow-up in the earlier ticket's queue {queue_id}",
    )


def classification_document(result: Classification, rules_version: int) -> dict[str, Any]:
    return {
        "rules_version": rules_version,
        "category": result.category,
        "priority": result.priority,
        "language": result.language,
        "queue_hint": result.queue_hint,
        "category_rule": result.category_rule,
        "priority_rule": result.priority_rule,
        "matched_rules": [{"rule_id": m.rule_id, "reason": m.reason} for m in result.matched_rules],
        "category_source": result.category_source,
        "priority_source": result.priority_source,
        "priority_reasons": list(result.priority_reasons),
        "signals": [{"kind": s.kind, "reason": s.reason} for s in result.signals],
        "model": model_document(result.model),
    }


def model_document(verdicts: ModelVerdicts | None) -> dict[str, Any] | None:
    """The model's version and, per question, label, probability and top features."""
    if verdicts is None:
        return None
    return {
        "version": verdicts.version,
        **{
            name: {
                "label": v.label,
                "probability": round(v.probability, 4),
                "features": list(v.features),
            }
            for name, v in (("category", verdicts.category), ("priority", verdicts.priority))
        },
    }


def timeout_at(now: datetime, step: StepMatch) -> datetime | None:
    return now + timedelta(seconds=step.timeout_s) if step.timeout_s else None


def new_ticket(
    contact: ContactReceived,
    policy: RoutingPolicy,
    rules: Rules,
    now: datetime,
    placement: Placement = Placement(),
    registered_segment: str | None = None,
    earlier: Sequence[EarlierTicket] = (),
) -> NewTicket:
    """A new ticket for the contact: classified, routed by the policy (or placed), queued;
    with the customer's registered segment (`router.domain.segments.ticket_segment`) and
    their `earlier` tickets (a repeated contact's priority is raised)."""
    facts = facts_of(contact, registered_segment)
    result = classify_contact(facts, rules, placement.category, earlier, now)
    step = route(policy, facts, result, placement.queue_id)
    priority = step.priority_override or result.priority
    return NewTicket(
        id=placement.ticket_id or uuid7(),
        contact=contact,
        category=result.category,
        category_rule=result.category_rule,
        priority=priority,
        language=result.language,
        segment=facts.segment,
        queue_id=step.queue_id,
        classification=classification_document(result, rules.version),
        policy_version=step.policy_version,
        policy_step=step.step_id,
        step_timeout_at=timeout_at(now, step),
        routing_reason=step.reason,
        follow_up_of=placement.follow_up_of,
        opened_at=now,
        owner_agent_id=placement.owner_agent_id,
        open_reason=placement.reason,
    )


def contact_added(ticket_id: uuid.UUID, contact: ContactReceived) -> TicketContactAdded:
    return TicketContactAdded(
        ticket_id=ticket_id,
        customer_id=contact.customer_id,
        contact_id=contact.contact_id,
        channel=contact.channel,
        received_at=contact.received_at,
    )


def contact_history(contact: ContactReceived, reason: str, at: datetime) -> HistoryEntry:
    return HistoryEntry(
        "contact",
        f"customer:{contact.customer_id}",
        at,
        reason=reason,
        data={"contact_id": str(contact.contact_id)},
    )
