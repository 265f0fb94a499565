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
from typing import Any, Literal

from ccshared.events.payloads import Priority, SlaMetric
from sla.domain.calendar import next_business_moment
from sla.domain.clock import SlaClock, TicketClocks
from sla.domain.policy import EscalationAction, SlaPolicy, raised_priority

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


# The queue escalated tickets move to (the router's).
ESCALATION_QUEUE_ID = "escalations"


def timer_payload(
    timer: SlaTimer, clock: SlaClock, policy: SlaPolicy, priority: Priority
) -> dict[str, Any]:
    """The event payload the timer will publish, all but `at` (stamped when it fires)."""
    base: dict[str, Any] = {"ticket_id": str(timer.ticket_id), "metric": timer.metric}
    if timer.kind == "escalation":
        level = next(lv for lv in policy.escalation if lv.level == timer.level)
        raise_to = raised_priority(priority, level) if "raise_priority" in level.actions else None
        return {
            **base,
            "level": timer.level,
            "actions": sorted(timer.actions),
            "raise_priority_to": raise_to,
            "escalation_queue_id": ESCALATION_QUEUE_ID
            if "move_to_escalation_queue" in timer.actions
            else None,
            # Not part of the event: what the scanner needs to record the outcome.
            "_cycle": timer.cycle,
        }
    base |= {
        "policy_id": policy.id,
        "policy_version": policy.version,
        "deadline": timer.deadline.isoformat(),
        "_cycle": timer.cycle,
    }
    if timer.kind == "warning":
        base["share_elapsed"] = clock.warn_at_share
    return base


def timer_rows(
    ticket: TicketClocks, policy: SlaPolicy | None, priority: Priority, shard: int
) -> list[dict[str, Any]]:
    """The pending timers of every running clock, with `seq` ordering those due together."""
    if policy is None:
        return []
    timers: list[tuple[SlaTimer, SlaClock]] = []
    for clock in ticket.clocks.values():
        for timer in timers_for(clock, policy):
            # A deactivated policy stops escalating; its warnings and breaches still count.
            if timer.kind == "escalation" and not policy.active:
                continue
            timers.append((timer, clock))
    timers.sort(key=lambda tc: tc[0].due_at)  # stable: warning, breach, levels at a tie
    return [
        {
            "key": timer.key,
            "ticket_id": timer.ticket_id,
            "shard": shard,
            "metric": timer.metric,
            "cycle": timer.cycle,
            "kind": timer.kind,
            "level": timer.level,
            "seq": seq,
            "due_at": timer.due_at,
            "payload": timer_payload(timer, clock, policy, priority),
        }
        for seq, (timer, clock) in enumerate(timers)
    ]
