"""Request and response models of the router's API (the contact-center UI's backend)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from ccshared.events.payloads import Channel, Priority, TicketStatus
from ccshared.inputs import RequestBody
from router.domain.summary import waiting_since
from router.domain.tickets import Ticket

Strategy = Literal["longest_idle", "least_loaded", "round_robin", "best_skill_match"]
# What a user sets; the router also sets wrap_up (after a resolve, for the queue's seconds).
AgentStatus = Literal["available", "busy", "away", "offline"]
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class _In(RequestBody):
    pass


class QueueIn(_In):
    name: str = Field(min_length=1, max_length=200)
    required_skills: list[str] = Field(default_factory=list, max_length=50)
    strategy: Strategy = "longest_idle"
    offer_timeout_s: int = Field(default=30, ge=5, le=3600)
    wrap_up_s: int = Field(
        default=0,
        ge=0,
        le=3600,
        description="seconds an agent stays in wrap_up after resolving a ticket of this queue "
        "before new offers (0: none)",
    )
    supervisors: list[Annotated[str, Field(pattern=_ID)]] = Field(
        default_factory=list,
        max_length=50,
        description="user ids (token subjects) told of this queue's escalations "
        "(notify_supervisor) and detractor follow-ups",
    )
    managers: list[Annotated[str, Field(pattern=_ID)]] = Field(
        default_factory=list,
        max_length=50,
        description="user ids told of this queue's escalations with notify_manager",
    )


class QueueOut(QueueIn):
    id: str
    depth: int = 0
    oldest_wait_s: float | None = None
    agents_available: int = 0


def _default_capacity() -> dict[Channel, int]:
    return {"phone": 1, "chat": 3, "email": 5, "social": 5}


class AgentIn(_In):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["agent", "supervisor"] = "agent"
    skills: dict[str, int] = Field(default_factory=dict, description="skill -> level 1..5")
    capacity: dict[Channel, int] = Field(
        default_factory=_default_capacity,
        description="how many tickets of each channel at once",
    )

    @field_validator("skills")
    @classmethod
    def _levels(cls, value: dict[str, int]) -> dict[str, int]:
        for skill, level in value.items():
            if not 1 <= level <= 5:
                raise ValueError(f"level of {skill!r} must be 1..5")
        return value

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int]) -> dict[str, int]:
        for channel, n in value.items():
            if not 0 <= n <= 100:
                raise ValueError(f"capacity for {channel} must be 0..100")
        return value


class AgentOut(AgentIn):
    id: str
    status: Literal["available", "busy", "away", "offline", "wrap_up"]
    status_reason: str | None = Field(
        default=None,
        description="why: the router's missed_offer (an offer timed out), wrap_up, "
        "wrap_up_ended; or the user's own reason for away or offline; null when none",
    )
    status_since: datetime | None = None
    wrap_up_until: datetime | None = Field(
        default=None, description="when a wrap-up ends and the agent is available again"
    )
    load: dict[str, int] = Field(default_factory=dict)
    idle_since: datetime | None = None
    last_assigned_at: datetime | None = None
    assignments_total: int = 0


# The reasons the router gives statuses itself; a user's own reason may not pose as one.
ROUTER_STATUS_REASONS = frozenset({"missed_offer", "wrap_up", "wrap_up_ended"})


class AgentStatusIn(_In):
    status: AgentStatus
    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="why (away or offline only), e.g. lunch, training, 午休; shown to "
        "supervisors and kept in the status history",
    )

    @field_validator("reason")
    @classmethod
    def _own_reason(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be blank")
        if value in ROUTER_STATUS_REASONS:
            raise ValueError(f"{value} is a reason the router gives itself")
        return value

    @model_validator(mode="after")
    def _reason_only_when_away(self) -> Self:
        if self.reason is not None and self.status not in ("away", "offline"):
            raise ValueError("a reason goes with away or offline only")
        return self


class AgentStatusOut(BaseModel):
    """One status of the agent's history; it holds until the next one's `since`."""

    status: str
    reason: str | None = None
    since: datetime
    actor: str = Field(description="agent:<id>, supervisor:<id> or router")


class TicketSummary(BaseModel):
    """What a list or an offer shows of a ticket, so a screen needs one call, not one per
    ticket. Stored with the ticket when it opens; no contact is read for it."""

    channel: Channel
    subject: str | None = Field(
        description="the first contact's subject, else the first line of its text, cut to "
        "140 characters (an ellipsis marks the cut); null if both were empty"
    )
    priority: Priority
    customer_name: str | None = Field(
        description="the customer's name as their contacts gave it (the first that gave one); "
        "null if none did"
    )
    waiting_since: datetime = Field(
        description="since when the customer waits: while the ticket is queued or offered, "
        "since it entered its queue (`queued_at`); otherwise since their last message"
    )
    sla_deadline: datetime | None = Field(
        description="the ticket's next SLA deadline as the router stores it (null: none known)"
    )

    @classmethod
    def of(cls, ticket: Ticket) -> Self:
        return cls.of_columns(ticket, ticket.status)

    @classmethod
    def of_columns(cls, row: Any, status: TicketStatus) -> Self:
        """From a ticket or a row of its columns (`subject_line`, `customer_name`, ...) and
        the ticket's status."""
        return cls(
            channel=row.channel,
            subject=row.subject_line,
            priority=row.priority,
            customer_name=row.customer_name,
            waiting_since=waiting_since(status, row.queued_at, row.last_contact_at),
            sla_deadline=row.sla_deadline,
        )


class OfferOut(BaseModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    agent_id: str
    status: str = Field(
        description="pending, accepted, declined, timed_out, or rescinded (the ticket moved on "
        "while the offer was pending: closed, transferred, or moved by an escalation)"
    )
    offered_at: datetime
    expires_at: datetime
    responded_at: datetime | None = None
    reason: str | None = None


class PendingOfferOut(OfferOut):
    summary: TicketSummary


class DeclineIn(_In):
    reason: str = Field(min_length=1, max_length=500)


class ReplyIn(_In):
    agent_id: str | None = Field(
        default=None,
        pattern=_ID,
        description="who answered: an agent's own id (the default: the token's agent; another "
        "is a 403); a supervisor must name the agent they answer for",
    )
    channel: Channel | None = None
    text: str | None = Field(
        default=None,
        description="what the customer gets (UTF-8, at most ROUTER_MESSAGE_MAX_BYTES bytes: a "
        "413 naming body.text above; blank: a 422). Stored in the conversation and published "
        "for delivery (message.outbound); on the phone channel a call-back request. Left out, "
        "only that the agent answered is recorded (e.g. on a call), as before",
    )
    canned_response_id: uuid.UUID | None = Field(
        default=None, description="the canned response the text was made from (unknown: 422)"
    )


class NoteIn(_In):
    text: str = Field(
        description="an internal note, never sent to the customer; `@<agent id>` mentions an "
        "agent (they are notified; an unknown one is a 422 naming body.text)"
    )


class MessageOut(BaseModel):
    """One message of a ticket's conversation: a customer's contact (`inbound`), an agent's
    reply (`outbound`, with its delivery state) or an internal note (`note`)."""

    id: uuid.UUID
    direction: Literal["inbound", "outbound", "note"]
    kind: Literal["contact", "reply", "callback_request", "note"]
    author: str = Field(description="customer, agent:<id> or supervisor:<id>")
    channel: str
    at: datetime
    subject: str | None = None
    text: str | None = None
    sender: dict[str, Any] | None = Field(
        default=None, description="a contact's sender: name, email, phone, social_handle"
    )
    attachments: list[dict[str, Any]] = Field(
        default_factory=list,
        description="a contact's attachments: filename, content_type, size_bytes, url, ref",
    )
    canned_response_id: uuid.UUID | None = None
    reply_to_contact_id: uuid.UUID | None = None
    mentions: list[str] = Field(default_factory=list)
    delivery_state: Literal["queued", "sent", "delivered", "read", "failed"] | None = Field(
        default=None, description="replies only: queued → sent → delivered/read, or failed"
    )
    delivery_reason: str | None = None
    delivery_at: datetime | None = None
    provider_message_id: str | None = None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class CannedResponseIn(_In):
    queue_id: str = Field(pattern=_ID)
    language: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", examples=["en", "zh"])
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(
        min_length=1,
        max_length=20_000,
        description="the text, with placeholders {customer_name}, {ticket_number}, {agent_name} "
        "(any other is a 422 naming body.body)",
    )


class CannedResponseOut(CannedResponseIn):
    id: uuid.UUID
    created_by: str
    created_at: datetime
    updated_at: datetime


class RenderedCannedResponse(BaseModel):
    canned_response_id: uuid.UUID
    language: str
    text: str = Field(description="the body with the ticket's placeholders filled in, to edit")


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: str = Field(
        description="escalation, mention, new_offer, missed_offer, follow_up, delivery_failed"
    )
    ticket_id: uuid.UUID | None
    text: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


class TransferIn(_In):
    reason: str = Field(min_length=1, max_length=500)
    to_queue_id: str | None = None
    to_agent_id: str | None = None


class ResolveIn(_In):
    resolution_code: str = Field(min_length=1, max_length=100)
    first_contact_resolution: bool | None = Field(
        default=None,
        description="solved on first contact; left out, the router decides: true when the "
        "ticket had exactly one customer contact, was never transferred or reopened, and is "
        "not a follow-up",
    )


class ReclassifyIn(_In):
    """A correction: the ticket's right category and/or priority (left out: unchanged)."""

    category: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    priority: Priority | None = None
    reason: str | None = Field(default=None, max_length=500)


class ReasonIn(_In):
    reason: str | None = Field(default=None, max_length=500)


class TicketOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    status: str
    category: str
    priority: str
    language: str | None
    segment: str | None
    queue_id: str | None
    owner_agent_id: str | None
    assignee_agent_id: str | None
    policy_version: int | None
    policy_step: str | None
    follow_up_of: uuid.UUID | None
    resolution_code: str | None
    first_contact_resolution: bool | None
    opened_at: datetime
    last_contact_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    summary: TicketSummary

    @classmethod
    def of(cls, ticket: Ticket) -> Self:
        return cls(**ticket.__dict__, summary=TicketSummary.of(ticket))


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: str | None


class TicketDetail(TicketOut):
    classification: dict[str, Any]
    contacts: list[dict[str, Any]]
    history: list[dict[str, Any]]
    routing_decisions: list[dict[str, Any]]
    offers: list[OfferOut]
    messages: list[MessageOut] = Field(
        default_factory=list,
        description="the conversation's last messages (ROUTER_DETAIL_MESSAGES, oldest first); "
        "GET /v1/tickets/{id}/messages pages through all of it",
    )


class PolicyStepIn(_In):
    id: str = Field(pattern=_ID)
    condition: str = Field(min_length=1, max_length=4000)
    queue_id: str
    priority: Priority | None = None
    timeout_s: int | None = Field(default=None, gt=0, le=86_400)
    overflow_only: bool = False


class PolicyIn(_In):
    steps: list[PolicyStepIn] = Field(min_length=1, max_length=100)


class PolicyOut(BaseModel):
    version: int
    steps: list[PolicyStepIn]


class ClassificationRuleIn(_In):
    """A rule: when every keyword group matches (any keyword of a group, in the subject or text;
    Chinese keywords as substrings, others as whole words) and the condition holds, it sets the
    category (first matching rule wins), the priority (most urgent wins) and/or a queue hint."""

    id: str = Field(pattern=_ID)
    description: str = Field(default="", max_length=500)
    keywords: list[list[str]] = Field(default_factory=list, max_length=10)
    condition: str | None = Field(default=None, max_length=4000)
    category: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    priority: Priority | None = None
    queue_hint: str | None = Field(default=None, pattern=_ID)
    stop: bool = Field(default=False, description="no later rule applies when this one matches")
    fallback: bool = Field(
        default=False,
        description="the trained model decides over this keyword rule when it is sure "
        "(a rule with a condition always decides)",
    )

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, groups: list[list[str]]) -> list[list[str]]:
        for group in groups:
            if not 1 <= len(group) <= 200:
                raise ValueError("each keyword group holds 1 to 200 keywords")
            if any(not 1 <= len(word.strip()) <= 100 for word in group):
                raise ValueError("a keyword is 1 to 100 characters")
        return groups


class ClassificationRulesIn(_In):
    rules: list[ClassificationRuleIn] = Field(min_length=1, max_length=200)


class ClassificationRulesOut(BaseModel):
    version: int
    created_by: str
    rules: list[ClassificationRuleIn]


class NotificationSettingsIn(_In):
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    email_opt_in: bool = Field(
        default=False,
        description="escalations and follow-ups by e-mail too (notification.email_requested)",
    )


class NotificationSettingsOut(BaseModel):
    email: str | None
    email_opt_in: bool


class SocialHandleOut(BaseModel):
    platform: str | None = Field(description="the social platform it was seen on, if known")
    handle: str


class CustomerOut(BaseModel):
    """A customer as their contacts describe them (intake decides who is who)."""

    id: uuid.UUID
    name: str | None = Field(description="the latest name a contact gave; null if none did")
    emails: list[str] = Field(description="lower-cased")
    phones: list[str] = Field(description="E.164")
    handles: list[SocialHandleOut]
    segment: str | None = Field(description="the customer's segment as its owner says (null: none)")
    first_contact_at: datetime
    last_contact_at: datetime
    contact_count: int

    @classmethod
    def of(cls, row: dict[str, Any], identities: list[tuple[str, str]]) -> Self:
        def values(kind: str) -> list[str]:
            return [value for k, value in identities if k == kind]

        handles = []
        for value in values("handle"):
            platform, _, handle = value.rpartition(":")
            handles.append(SocialHandleOut(platform=platform or None, handle=handle))
        return cls(
            id=row["id"],
            name=row["display_name"],
            emails=values("email"),
            phones=values("phone"),
            handles=handles,
            segment=row["segment"],
            first_contact_at=row["first_contact_at"],
            last_contact_at=row["last_contact_at"],
            contact_count=row["contact_count"],
        )


class CustomerContactOut(BaseModel):
    contact_id: uuid.UUID
    ticket_id: uuid.UUID
    channel: Channel
    received_at: datetime
    subject: str | None
    preview: str | None = Field(description="the subject or the text's first line, 140 characters")


class CustomerDetail(CustomerOut):
    tickets: list[TicketOut] = Field(
        description="the customer's tickets, newest first (an agent's: only those they may "
        "read); `GET /v1/tickets?customer_id=` pages through all of them"
    )
    more_tickets: bool = Field(description="whether there are more tickets than listed")
    last_contacts: list[CustomerContactOut] = Field(description="newest first")


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class MergeIn(_In):
    into: uuid.UUID = Field(description="the customer that remains")


class MergeOut(BaseModel):
    customer_id: uuid.UUID = Field(description="the customer that remains")
    merged_customer_id: uuid.UUID = Field(description="the customer merged into it")
    ticket_ids: list[uuid.UUID] = Field(description="the tickets that moved")
    at: datetime
