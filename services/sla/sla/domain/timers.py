"""The timers a running SLA clock needs: its warning, its breach and each escalation level.

Timing rules:
- warning: when `warn_at_share` of the target is consumed, deferred to the next business moment
  (it is a notification: nobody is told at midnight about a team that works 9-18).
- breach: at the deadline itself.
- escalation level: `offset` of wall time after the deadline (negative: before it), because an
  overdue ticket keeps getting later whether or not the team is at work. A level with a notify
  action is deferred, as a whole, to the next business moment; levels never fire out of order.

Each timer has a key stable across recomputation, `{ticket}:{metric}:{cycle}:{kind}:{level}`:
the scheduler stores it unique, so a recomputed timer replaces the pending one and a fired one
never fires again in the same cycle (a new next_response cycle gets new keys).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ccshared.events.payloads import Priority, SlaMetric
from sla.domain.calendar import next_business_moment
from sla.domain.clock import SlaClock
from sla.domain.policy import EscalationAction, SlaPolicy

TimerKind = Literal["warning", "breach", "escalation"]


@dataclass(frozen=True, slots=True)
class SlaTimer:
    key: str
    ticket_id: uuid.UUID
    metric: SlaMetric
    cycle: int
    kind: TimerKind
    level: int  # 0 for the warning and the breach
    due_at: datetime
    deadline: datetime
    actions: frozenset[EscalationAction] = frozenset()
    raise_priority_to: Priority | None = None


def timer_key(
    ticket_id: uuid.UUID, metric: SlaMetric, cycle: int, kind: TimerKind, level: int = 0
) -> str:
    return f"{ticket_id}:{metric}:{cycle}:{kind}:{level}"


def timers_for(clock: SlaClock, policy: SlaPolicy) -> list[SlaTimer]:
    """Every timer `clock` needs under `policy`, sorted by due time (ties keep warning, breach,
    levels in that order); none unless the clock is running.

    Timers already due are included: the scheduler fires them at once unless their key has
    fired before. When a clock stops (paused, fulfilled, cancelled), the pending timers of its
    cycle are to be dropped."""
    if clock.state != "running" or clock.deadline is None or clock.warning_at is None:
        return []
    deadline = clock.deadline

    def timer(
        kind: TimerKind,
        due_at: datetime,
        level: int = 0,
        actions: frozenset[EscalationAction] = frozenset(),
        raise_priority_to: Priority | None = None,
    ) -> SlaTimer:
        return SlaTimer(
            key=timer_key(clock.ticket_id, clock.metric, clock.cycle, kind, level),
            ticket_id=clock.ticket_id,
            metric=clock.metric,
            cycle=clock.cycle,
            kind=kind,
            level=level,
            due_at=due_at,
            deadline=deadline,
            actions=actions,
            raise_priority_to=raise_priority_to,
        )

    timers = [
        timer("warning", next_business_moment(clock.calendar, clock.warning_at)),
        timer("breach", deadline),
    ]
    previous_due: datetime | None = None
    for level in policy.escalation:
        due = deadline + level.offset
        if level.notifies:
            due = next_business_moment(clock.calendar, due)
        if previous_due is not None and due < previous_due:
            due = previous_due
        previous_due = due
        timers.append(timer("escalation", due, level.level, level.actions, level.raise_priority_to))
    timers.sort(key=lambda t: t.due_at)
    return timers
