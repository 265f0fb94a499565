"""Request and response models of the feedback API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field

from ccshared.inputs import RequestBody

Channel = Literal["phone", "email", "chat", "social"]


class AnswerIn(RequestBody):
    csat: int | None = Field(default=None, ge=1, le=5, description="Satisfaction, 1–5")
    nps: int | None = Field(default=None, ge=0, le=10, description="Likelihood to recommend")
    solved_first_contact: bool | None = Field(
        default=None, description="Was the issue solved on first contact (yes/no)"
    )
    comment: str | None = Field(default=None, max_length=4000)


class AnswerView(BaseModel):
    csat: int | None
    nps: int | None
    solved_first_contact: bool | None
    comment: str | None
    first_answered_at: datetime
    updated_at: datetime
    revisions: int


class QuestionView(BaseModel):
    id: str
    text: str
    kind: Literal["scale", "yes_no", "text"]
    min: int | None = None
    max: int | None = None
    min_label: str | None = None
    max_label: str | None = None


class SurveyView(BaseModel):
    survey_id: uuid.UUID
    ticket_id: uuid.UUID
    language: str
    title: str
    intro: str
    expires_at: datetime | None
    questions: list[QuestionView]
    answer: AnswerView | None
    may_answer: bool


class AnswerStored(BaseModel):
    survey_id: uuid.UUID
    revision: int
    updated: bool = Field(description="True when this replaced an earlier answer")
    follow_up_requested: bool
    praise_recorded: bool
    message: str


class DeliveryAttemptView(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryView(BaseModel):
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    attempt_log: list[DeliveryAttemptView]


class TicketSurveyView(BaseModel):
    survey_id: uuid.UUID
    ticket_id: uuid.UUID
    customer_id: uuid.UUID
    channel: Channel
    language: str
    status: Literal["scheduled", "sent", "suppressed"]
    suppression_reason: str | None
    due_at: datetime | None
    sent_at: datetime | None
    expires_at: datetime | None
    reminded_at: datetime | None
    answer: AnswerView | None
    deliveries: list[DeliveryView] | None = Field(
        description="Webhook deliveries with every attempt; null for an agent (supervisors only)"
    )


class WebhookIn(RequestBody):
    channel: Channel
    url: AnyHttpUrl
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="Signing secret; generated (and returned once) when left out",
    )
    description: str | None = Field(default=None, max_length=500)
    active: bool = True


class WebhookPatch(RequestBody):
    NOT_NULL = frozenset({"url", "secret", "active"})

    url: AnyHttpUrl | None = None
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None


class WebhookView(BaseModel):
    id: uuid.UUID
    channel: Channel
    url: str
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookView):
    secret: str = Field(description="Shown only now: verify X-Feedback-Signature with it")


class KeyAccountIn(RequestBody):
    customer_id: uuid.UUID
    name: str = Field(min_length=1, max_length=200)
    relationship_started_at: AwareDatetime
    channel: Channel | None = None
    language: str | None = Field(default=None, max_length=35)
    active: bool = True
    first_callback_at: AwareDatetime | None = Field(
        default=None,
        description="When the first call-back is due; default: the next date of the schedule",
    )


class KeyAccountPatch(RequestBody):
    NOT_NULL = frozenset({"name", "relationship_started_at", "active"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    relationship_started_at: AwareDatetime | None = None
    channel: Channel | None = None
    language: str | None = Field(default=None, max_length=35)
    active: bool | None = None


class CallbackView(BaseModel):
    follow_up_id: uuid.UUID
    due_at: datetime
    requested_at: datetime


class KeyAccountView(BaseModel):
    customer_id: uuid.UUID
    name: str
    relationship_started_at: datetime
    channel: Channel | None
    language: str | None
    active: bool
    next_callback_at: datetime
    created_at: datetime
    updated_at: datetime
    callbacks: list[CallbackView] = Field(default_factory=list)


class KpiFigures(BaseModel):
    tickets: int = Field(description="Tickets resolved in the range")
    csat: float | None = Field(description="Share of CSAT answers that are 4 or 5 (0–1)")
    nps: float | None = Field(description="% promoters (9–10) − % detractors (0–6)")
    fcr_answered: float | None = Field(description="Share of answers saying solved first time")
    fcr_observed: float | None = Field(
        description="Share resolved with no reopen and no new contact within the window"
    )
    first_response_avg_s: float | None
    first_response_p90_s: float | None = Field(description="Exact nearest-rank p90 (s)")
    resolution_avg_s: float | None
    resolution_p90_s: float | None
    sla_attainment: float | None = Field(description="Targets met / targets met or breached")
    escalation_rate: float | None
    complaint_rate: float | None = Field(description="Share of tickets of category 'complaint'")
    survey_response_rate: float | None = Field(description="Answered / sent surveys")
    surveys_sent: int
    answers: int
    praise_count: int


class KpiGroup(KpiFigures):
    key: str


class KpiReport(BaseModel):
    first: str = Field(alias="from", description="First UTC day (inclusive)")
    last: str = Field(alias="to", description="Last UTC day (inclusive)")
    group_by: str
    groups: list[KpiGroup]
    total: KpiFigures

    model_config = ConfigDict(populate_by_name=True)
