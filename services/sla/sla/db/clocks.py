"""A ticket's SLA clocks as JSON (the `sla_tickets.clocks` column) and back.

Calendars are stored by id and resolved on load, so a calendar edited through the API applies to
the time its running clocks count from then on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from ccshared.events.payloads import SlaMetric
from sla.domain.calendar import BusinessCalendar
from sla.domain.clock import ClockState, EntryKind, SlaClock, TicketClocks, TimelineEntry


def _us(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def clock_to_json(clock: SlaClock) -> dict[str, Any]:
    return {
        "target_us": _us(clock.target),
        "calendar_id": clock.calendar.id,
        "warn_at_share": clock.warn_at_share,
        "cycle": clock.cycle,
        "state": clock.state,
        "consumed_us": _us(clock.consumed),
        "running_since": _ts(clock.running_since),
        "deadline": _ts(clock.deadline),
        "warning_at": _ts(clock.warning_at),
        "warned_at": _ts(clock.warned_at),
        "breached_at": _ts(clock.breached_at),
        "fulfilled_at": _ts(clock.fulfilled_at),
        "timeline": [
            {
                "kind": e.kind,
                "at": e.at.isoformat(),
                "cycle": e.cycle,
                "consumed_us": _us(e.consumed),
                "deadline": _ts(e.deadline),
                "note": e.note,
            }
            for e in clock.timeline
        ],
    }


def clock_from_json(
    ticket_id: uuid.UUID,
    metric: SlaMetric,
    data: dict[str, Any],
    calendar: Callable[[str], BusinessCalendar],
) -> SlaClock:
    return SlaClock(
        ticket_id=ticket_id,
        metric=metric,
        target=timedelta(microseconds=data["target_us"]),
        calendar=calendar(data["calendar_id"]),
        warn_at_share=data["warn_at_share"],
        cycle=data["cycle"],
        state=cast(ClockState, data["state"]),
        consumed=timedelta(microseconds=data["consumed_us"]),
        running_since=_dt(data["running_since"]),
        deadline=_dt(data["deadline"]),
        warning_at=_dt(data["warning_at"]),
        warned_at=_dt(data["warned_at"]),
        breached_at=_dt(data["breached_at"]),
        fulfilled_at=_dt(data["fulfilled_at"]),
        timeline=[
            TimelineEntry(
                kind=cast(EntryKind, e["kind"]),
                at=datetime.fromisoformat(e["at"]),
                cycle=e["cycle"],
                consumed=timedelta(microseconds=e["consumed_us"]),
                deadline=_dt(e["deadline"]),
                note=e["note"],
            )
            for e in data["timeline"]
        ],
    )


def clocks_to_json(ticket: TicketClocks) -> dict[str, Any]:
    return {metric: clock_to_json(clock) for metric, clock in ticket.clocks.items()}


def clocks_from_json(
    ticket_id: uuid.UUID,
    data: dict[str, Any],
    agent_replied: bool,
    calendar: Callable[[str], BusinessCalendar],
) -> TicketClocks:
    clocks = {
        cast(SlaMetric, metric): clock_from_json(ticket_id, cast(SlaMetric, metric), c, calendar)
        for metric, c in data.items()
    }
    return TicketClocks(ticket_id, clocks, agent_replied)


def next_deadline(ticket: TicketClocks) -> datetime | None:
    """The earliest deadline of a running clock (what the at-risk list sorts by)."""
    return next_due(ticket)[0]


def next_due(ticket: TicketClocks) -> tuple[datetime | None, SlaMetric | None]:
    """The earliest deadline of a running clock and that clock's metric (None, None: no clock
    runs). What sla.deadline_changed publishes."""
    running = [
        (c.deadline, c.metric)
        for c in ticket.clocks.values()
        if c.state == "running" and c.deadline is not None
    ]
    if not running:
        return None, None
    deadline, metric = min(running)
    return deadline, metric
