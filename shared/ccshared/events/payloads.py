"""Typed payloads of every event in the system. Change a payload only compatibly (add optional
fields); anything else is a new schema version in the catalog."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Channel = Literal["phone", "email", "chat", "social"]
Priority = Literal["urgent", "high", "normal", "low"]
TicketStatus = Literal[
    "new", "queued", "assigned", "in_progress", "pending_customer", "resolved", "closed"
]
SlaMetric = Literal["first_response", "next_response", "resolution"]


class Payload(BaseModel):
    # Consumers ignore fields they do not know yet, so producers can add optional ones first.
    model_config = ConfigDict(frozen=True, extra="ignore")


# --- intake.contacts --------------------------------------------------------------------


class CustomerHints(Payload):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    social_handle: str | None = None
    account_id: str | None = None


class ThreadRefs(Payload):
    """What the router threads a contact onto an open ticket by."""

    email_message_id: str | None = None
    email_in_reply_to: str | None = None
    email_references: list[str] = Field(default_factory=list)
    chat_session_id: str | None = None
    social_platform: str | None = None
    social_post_id: str | None = None
    social_parent_post_id: str | None = None


class ContactReceived(Payload):
    contact_id: uuid.UUID
    customer_id: uuid.UUID
    channel: Channel
    external_id: str
    received_at: AwareDatetime
    subject: str | None = None
    text: str | None = None
    language: str | None = None
    customer: CustomerHints = CustomerHints()
    thread: ThreadRefs = ThreadRefs()
    channel_data: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


# --- router.tickets ---------------------------------------------------------------------


class TicketOpened(Payload):
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    contact_id: uuid.UUID | None = None
    channel: Channel
    category: str
    priority: Priority
    language: str | None = None
    segment: str | None = None
    queue_id: str | None = None
    classification_rule: str | None = None
    follow_up_of: uuid.UUID | None = None
    opened_at: AwareDatetime
    received_at: AwareDatetime | None = Field(
        default=None,
        description="When the customer wrote: the opening contact's received_at (null: a ticket "
        "opened without a contact, or an older router). SLA clocks start from it.",
    )


class TicketContactAdded(Payload):
    """A customer message joined an open ticket (starts the next-response clock)."""

    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    contact_id: uuid.UUID
    channel: Channel
    received_at: AwareDatetime


class TicketStatusChanged(Payload):
    ticket_id: uuid.UUID
    from_status: TicketStatus
    to_status: TicketStatus
    actor: str
    reason: str | None = None
    at: AwareDatetime


class TicketRouted(Payload):
    """The ticket was placed in a queue (first time, overflow, transfer or escalation)."""

    ticket_id: uuid.UUID
    queue_id: str
    priority: Priority
    category: str
    channel: Channel
    segment: str | None = None
    policy_version: int | None = None
    policy_step: str | None = None
    reason: str | None = None
    at: AwareDatetime


class RoutingCandidate(Payload):
    agent_id: str
    score: float | None = None
    passed_over: str | None = Field(
        default=None, description="busy, at_capacity, missing_skill, offline, ... or null if chosen"
    )


class TicketAssigned(Payload):
    ticket_id: uuid.UUID
    agent_id: str
    owner_agent_id: str
    queue_id: str
    decision_id: uuid.UUID
    policy_version: int | None = None
    policy_step: str | None = None
    strategy: str
    candidates: list[RoutingCandidate] = Field(
        default_factory=list,
        description="The best candidates, best first (at most 10): the chosen agent and those "
        "it outranked. The router's stored decision (GET /v1/tickets/{id}) lists every agent "
        "considered with the reason each was passed over.",
    )
    candidates_considered: int | None = Field(
        default=None, description="How many agents the decision considered in all."
    )
    tie_breaker: str | None = None
    at: AwareDatetime


class TicketTransferred(Payload):
    ticket_id: uuid.UUID
    from_agent_id: str | None
    to_agent_id: str | None
    to_queue_id: str | None = None
    owner_agent_id: str | None
    reason: str
    at: AwareDatetime


class TicketReclassified(Payload):
    """An agent or supervisor corrected a ticket's category and/or priority (a label the
    router's classifier is retrained on); `to_queue_id` when the routing policy moved it."""

    ticket_id: uuid.UUID
    from_category: str
    to_category: str
    from_priority: Priority
    to_priority: Priority
    actor: str
    reason: str | None = None
    model_version: str | None = None  # the model that had classified it, if one did
    to_queue_id: str | None = None
    at: AwareDatetime


class TicketReplied(Payload):
    """An agent answered the customer; the first one is the first response."""

    ticket_id: uuid.UUID
    agent_id: str
    channel: Channel
    first_response: bool
    at: AwareDatetime
    message_id: uuid.UUID | None = Field(
        default=None,
        description="the reply's message in the conversation (its message.outbound's id); null "
        "for a reply recorded without text, or from an older router",
    )


class TicketResolved(Payload):
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    agent_id: str | None
    owner_agent_id: str | None
    channel: Channel
    queue_id: str | None
    category: str
    priority: Priority
    language: str | None = None
    resolution_code: str
    first_contact_resolution: bool
    opened_at: AwareDatetime
    resolved_at: AwareDatetime


class TicketReopened(Payload):
    ticket_id: uuid.UUID
    actor: str
    reason: str | None = None
    at: AwareDatetime


class TicketClosed(Payload):
    ticket_id: uuid.UUID
    actor: str
    reason: str | None = Field(default=None, description="e.g. spam, duplicate, solved")
    at: AwareDatetime


AgentStatus = Literal["available", "busy", "away", "offline", "wrap_up"]


class AgentStatusChanged(Payload):
    """An agent's status changed: set through the API, or by the router (reason `missed_offer`:
    an offer timed out; `wrap_up` after resolving, `wrap_up_ended` when it is over). Keyed by
    `agent_id`."""

    agent_id: str
    from_status: AgentStatus | None
    to_status: AgentStatus
    reason: str | None = Field(
        default=None,
        description="missed_offer, wrap_up, wrap_up_ended (the router's), or the user's own "
        "reason for away or offline (free text), or null",
    )
    actor: str = Field(description="agent:<id>, supervisor:<id> or router")
    ticket_id: uuid.UUID | None = Field(
        default=None, description="the ticket whose offer was missed, or which was resolved"
    )
    until: AwareDatetime | None = Field(default=None, description="when a wrap-up ends")
    at: AwareDatetime


class MessageOutbound(Payload):
    """Something the platform must deliver to a customer on their channel: an agent's reply (or,
    on the phone channel, a call-back request to the telephony integration). Intake delivers
    it through the integration the customer's contact came from (`reply_to_contact_id`) and
    reports each delivery state on intake.deliveries. Keyed by ticket_id."""

    message_id: uuid.UUID
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    channel: Channel
    kind: Literal["reply", "callback_request"] = "reply"
    author: str = Field(description="agent:<id>, supervisor:<id> or router")
    text: str
    html: str | None = None
    subject: str | None = None
    language: str | None = None
    reply_to_contact_id: uuid.UUID | None = Field(
        default=None, description="the customer's last contact on the ticket (threading, route)"
    )
    created_at: AwareDatetime


NotificationKind = Literal[
    "escalation", "mention", "new_offer", "missed_offer", "follow_up", "delivery_failed"
]


class NotificationCreated(Payload):
    """A notification stored for one user (an agent or a supervisor, by their token subject),
    for the console's live view; `GET /v1/notifications` of the router lists them. Keyed by
    `recipient_id`, so one user's arrive in order."""

    notification_id: uuid.UUID
    recipient_id: str
    kind: NotificationKind
    ticket_id: uuid.UUID | None = None
    text: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime


class NotificationEmailRequested(Payload):
    """A notification its recipient (a supervisor or manager who opted in) also wants by
    e-mail: what to send, to whom. For intake's SMTP path, as `message.outbound` is for
    customers. Keyed by `recipient_id`."""

    notification_id: uuid.UUID
    recipient_id: str
    to: str = Field(description="the recipient's e-mail address, as they set it")
    subject: str
    text: str
    ticket_id: uuid.UUID | None = None
    created_at: AwareDatetime


class CustomerMerged(Payload):
    """A supervisor merged two customers: every ticket and identity of `merged_customer_id`
    now belongs to `customer_id`, and the merged customer is no more (reads of it name the
    target). Intake re-points the merged customer's identities, feedback its per-customer rows.
    Keyed by `customer_id` (the target)."""

    customer_id: uuid.UUID = Field(description="the customer that remains (the target)")
    merged_customer_id: uuid.UUID = Field(description="the customer merged into it (gone)")
    actor: str = Field(description="supervisor:<id>")
    ticket_ids: list[uuid.UUID] = Field(
        default_factory=list,
        description="the tickets that moved to the target (the first 1,000; tickets_moved counts "
        "them all)",
    )
    tickets_moved: int = Field(default=0, ge=0, description="how many tickets moved")
    at: AwareDatetime


# --- sla.events -------------------------------------------------------------------------


class SlaWarning(Payload):
    ticket_id: uuid.UUID
    metric: SlaMetric
    policy_id: str
    policy_version: int
    deadline: AwareDatetime
    share_elapsed: float
    at: AwareDatetime


class SlaBreached(Payload):
    ticket_id: uuid.UUID
    metric: SlaMetric
    policy_id: str
    policy_version: int
    deadline: AwareDatetime
    at: AwareDatetime


class SlaEscalated(Payload):
    ticket_id: uuid.UUID
    metric: SlaMetric
    level: int = Field(ge=1)
    actions: list[
        Literal["raise_priority", "move_to_escalation_queue", "notify_supervisor", "notify_manager"]
    ]
    raise_priority_to: Priority | None = None
    escalation_queue_id: str | None = None
    at: AwareDatetime


class SlaMet(Payload):
    ticket_id: uuid.UUID
    metric: SlaMetric
    policy_id: str
    policy_version: int
    deadline: AwareDatetime
    met_at: AwareDatetime


class SlaDeadlineChanged(Payload):
    """A ticket's next deadline moved: a clock started, paused, resumed, was re-targeted or was
    met. `next_deadline` is the earliest deadline of a running clock (null: none runs) and
    `metric` that clock's. `version` grows by one with each change of one ticket, so a consumer
    keeps the highest it has seen and ignores an older one delivered late."""

    ticket_id: uuid.UUID
    next_deadline: AwareDatetime | None
    metric: SlaMetric | None
    version: int = Field(ge=1)
    at: AwareDatetime


# --- feedback.events --------------------------------------------------------------------


class SurveyRequested(Payload):
    survey_id: uuid.UUID
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    channel: Channel
    language: str
    url: str
    expires_at: AwareDatetime
    reminder: bool = False


class SurveyAnswered(Payload):
    survey_id: uuid.UUID
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    csat: int | None = Field(default=None, ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    solved_first_contact: bool | None = None
    comment: str | None = None
    answered_at: AwareDatetime


class FollowUpRequested(Payload):
    follow_up_id: uuid.UUID
    customer_id: uuid.UUID
    ticket_id: uuid.UUID | None = None
    reason: Literal["detractor", "key_account_callback"]
    channel: Channel | None = None
    language: str | None = None
    note: str | None = None
    due_at: AwareDatetime


class CustomerSegmentChanged(Payload):
    """A customer's segment as its owner says it: feedback's key-account registry publishes
    `key_account` when a customer becomes an active key account and null when the account is
    deactivated or removed. `version` grows with each change of one customer, so a consumer
    keeps the highest it has seen and ignores an older one delivered late. Keyed by
    customer_id."""

    customer_id: uuid.UUID
    segment: str | None
    version: int = Field(ge=1)
    source: str  # who owns the segment, e.g. feedback.key_accounts
    at: AwareDatetime


class PraiseRecorded(Payload):
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    agent_id: str | None
    comment: str
    at: AwareDatetime


# --- intake.deliveries ------------------------------------------------------------------

DeliveryState = Literal["queued", "sent", "delivered", "read", "failed"]


class MessageDeliveryChanged(Payload):
    """A step in delivering an outbound message: sent (the SMTP server or the integration took
    it), delivered/read (reported by the integration), failed (a 4xx, or the last retry), with
    the reason. Keyed by ticket_id."""

    message_id: uuid.UUID
    ticket_id: uuid.UUID
    state: DeliveryState
    attempt: int = 1
    reason: str | None = None
    provider_message_id: str | None = Field(
        default=None, description="the e-mail's Message-ID, or the integration's own id"
    )
    at: AwareDatetime
