"""What the SLA API answers (request bodies are the documents in sla.domain.definitions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ccshared.events.payloads import SlaMetric
from sla.domain.clock import ClockState, ClockStatus, EntryKind
from sla.domain.definitions import CalendarDoc, PolicyDoc


class TimelineEntryView(BaseModel):
    kind: EntryKind
    at: datetime
    cycle: int
    consumed_s: float = Field(description="Business time consumed at this moment")
    deadline: datetime | None = Field(description="The deadline as it stood after this entry")
    note: str = ""


class MetricView(BaseModel):
    metric: SlaMetric
    status: ClockStatus = Field(description="As of now: running, at_risk, breached, met, ...")
    state: ClockState
    cycle: int
    target_s: float
    consumed_s: float = Field(description="Business time consumed so far, pauses excluded")
    remaining_s: float = Field(description="Business time left; negative once overdue")
    deadline: datetime | None
    warning_at: datetime | None
    calendar_id: str
    timeline: list[TimelineEntryView]


class TicketSlaView(BaseModel):
    ticket_id: uuid.UUID
    status: Literal["open", "resolved", "closed"]
    policy_id: str | None
    policy_version: int | None
    priority: str
    channel: str
    category: str
    queue_id: str | None
    segment: str | None
    opened_at: datetime
    as_of: datetime
    metrics: list[MetricView]


class AtRiskClock(BaseModel):
    ticket_id: uuid.UUID
    metric: SlaMetric
    status: ClockStatus
    deadline: datetime
    remaining_s: float
    policy_id: str | None
    policy_version: int | None
    priority: str
    queue_id: str | None


class AtRiskList(BaseModel):
    as_of: datetime
    items: list[AtRiskClock]


class PolicyView(PolicyDoc):
    id: str
    version: int
    active: bool
    created_at: datetime
    recomputed_open_tickets: int | None = Field(
        default=None, description="With ?apply_to_open=recompute: how many were moved"
    )


class CalendarView(CalendarDoc):
    id: str
    revision: int
    updated_at: datetime


class HolidayImport(BaseModel):
    calendar: CalendarView
    imported: int = Field(description="Dates found in the file")
    added: int = Field(description="Dates that were not yet holidays")


class AttainmentRow(BaseModel):
    group: str | None = Field(description="The queue, channel or priority")
    metric: SlaMetric
    met: int
    breached: int
    total: int
    attainment: float = Field(description="met / total")


class Attainment(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    group_by: Literal["queue", "channel", "priority"]
    rows: list[AttainmentRow]
