"""Policy and calendar documents: the JSON shape the API accepts and the database stores, and
their conversion to the domain's SlaPolicy and BusinessCalendar (which validate them)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ccshared.events.payloads import Priority, SlaMetric
from sla.domain.calendar import (
    DEFAULT_CALENDAR_ID,
    WEEKDAYS,
    BusinessCalendar,
    InvalidCalendar,
    Weekday,
)
from sla.domain.policy import (
    DEFAULT_RANK,
    ConditionField,
    EscalationAction,
    EscalationLevel,
    SlaPolicy,
)

_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EscalationLevelDoc(Document):
    level: int = Field(ge=1, description="1, 2, ... in the order the levels fire")
    offset: timedelta = Field(
        description="Wall time after the breach (negative: before it), ISO 8601 or seconds"
    )
    actions: list[EscalationAction] = Field(min_length=1)
    raise_priority_to: Priority | None = Field(
        default=None, description="With raise_priority; default: one step up"
    )


class PolicyDoc(Document):
    """One version of a policy, as written by an administrator."""

    name: str = Field(min_length=1, max_length=200)
    rank: int = Field(
        default=DEFAULT_RANK // 2, ge=0, description="Lower is tried first; defaults rank 1000"
    )
    conditions: dict[ConditionField, list[str]] = Field(
        default_factory=dict,
        description="Ticket field -> allowed values; a missing field allows any value",
        examples=[{"priority": ["urgent", "high"], "channel": ["phone"]}],
    )
    targets: dict[SlaMetric, timedelta] = Field(
        min_length=1,
        description="Business time per metric, ISO 8601 duration (PT1H) or seconds",
        examples=[{"first_response": "PT1H", "resolution": "PT8H"}],
    )
    warn_at_share: float = Field(default=0.75, description="Warn when this share is consumed")
    calendar_id: str = Field(default=DEFAULT_CALENDAR_ID, pattern=_ID_PATTERN)
    escalation: list[EscalationLevelDoc] = Field(default_factory=list)


class PolicyCreate(PolicyDoc):
    id: str = Field(pattern=_ID_PATTERN, description="Stable id, e.g. vip-complaints")


class CalendarDoc(Document):
    name: str = Field(default="", max_length=200)
    timezone: str = Field(description="IANA time zone, e.g. Asia/Shanghai", examples=["UTC"])
    twenty_four_seven: bool = False
    hours: dict[Weekday, list[str]] = Field(
        default_factory=dict,
        description="Working periods per weekday, 'HH:MM-HH:MM' local time (24:00 = midnight)",
        examples=[{"monday": ["09:00-12:00", "13:30-18:00"]}],
    )
    holidays: list[date] = Field(default_factory=list, description="Closed local dates")


class CalendarCreate(CalendarDoc):
    id: str = Field(pattern=_ID_PATTERN)


def policy_from_doc(policy_id: str, version: int, doc: PolicyDoc, active: bool) -> SlaPolicy:
    """The domain policy; raises InvalidPolicy naming the field at fault."""
    return SlaPolicy(
        id=policy_id,
        version=version,
        name=doc.name,
        rank=doc.rank,
        targets=dict(doc.targets),
        conditions={k: frozenset(v) for k, v in doc.conditions.items()},
        active=active,
        warn_at_share=doc.warn_at_share,
        calendar_id=doc.calendar_id,
        escalation=tuple(
            EscalationLevel(
                level.level, level.offset, frozenset(level.actions), level.raise_priority_to
            )
            for level in doc.escalation
        ),
    )


def policy_from_row(policy_id: str, version: int, body: dict[str, Any], active: bool) -> SlaPolicy:
    return policy_from_doc(policy_id, version, PolicyDoc.model_validate(body), active)


def policy_doc(policy: SlaPolicy) -> PolicyDoc:
    return PolicyDoc(
        name=policy.name,
        rank=policy.rank,
        conditions={k: sorted(v) for k, v in policy.conditions.items()},
        targets=dict(policy.targets),
        warn_at_share=policy.warn_at_share,
        calendar_id=policy.calendar_id,
        escalation=[
            EscalationLevelDoc(
                level=level.level,
                offset=level.offset,
                actions=sorted(level.actions),
                raise_priority_to=level.raise_priority_to,
            )
            for level in policy.escalation
        ],
    )


def calendar_from_doc(calendar_id: str, doc: CalendarDoc) -> BusinessCalendar:
    """The domain calendar; raises InvalidCalendar naming the field at fault."""
    if doc.twenty_four_seven:
        if any(doc.hours.values()):
            raise InvalidCalendar(
                "hours", "a 24x7 calendar is open all day; leave its working hours empty"
            )
        return BusinessCalendar(
            id=calendar_id,
            timezone=doc.timezone,
            holidays=frozenset(doc.holidays),
            twenty_four_seven=True,
            name=doc.name,
        )
    return BusinessCalendar.weekly(
        calendar_id, doc.timezone, doc.hours, holidays=doc.holidays, name=doc.name
    )


def calendar_from_row(calendar_id: str, body: dict[str, Any]) -> BusinessCalendar:
    return calendar_from_doc(calendar_id, CalendarDoc.model_validate(body))


def calendar_doc(calendar: BusinessCalendar) -> CalendarDoc:
    return CalendarDoc(
        name=calendar.name,
        timezone=calendar.timezone,
        twenty_four_seven=calendar.twenty_four_seven,
        hours={
            day: [str(p) for p in calendar.hours[day]] for day in WEEKDAYS if day in calendar.hours
        },
        holidays=sorted(calendar.holidays),
    )
