from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sla.domain.calendar import CHINA_OFFICE_CALENDAR, DEFAULT_CALENDAR, BusinessCalendar
from sla.domain.clock import SlaClock, TicketClocks
from sla.domain.policy import DEFAULT_POLICIES, EscalationLevel, SlaPolicy
from sla.domain.timers import timer_key, timers_for

H = timedelta(hours=1)
M = timedelta(minutes=1)
T0 = datetime(2025, 3, 3, 1, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TICKET = uuid.UUID("00000000-0000-0000-0000-0000000000bb")
URGENT = next(p for p in DEFAULT_POLICIES if p.id == "default-urgent")


def running_clock(
    policy: SlaPolicy, start: datetime, calendar: BusinessCalendar = DEFAULT_CALENDAR
) -> SlaClock:
    target = policy.targets["first_response"]
    c = SlaClock(TICKET, "first_response", target, calendar, policy.warn_at_share)
    c.start(start)
    return c


def test_warning_then_breach_then_each_escalation_level_in_order() -> None:
    timers = timers_for(running_clock(URGENT, T0), URGENT)
    assert [(t.kind, t.level, t.due_at) for t in timers] == [
        ("warning", 0, T0 + 30 * M),  # urgent warns at half the target
        ("breach", 0, T0 + H),
        ("escalation", 1, T0 + H),
        ("escalation", 2, T0 + 2 * H),
    ]
    level1, level2 = timers[2], timers[3]
    assert level1.actions == {"notify_supervisor", "raise_priority"}
    assert level2.actions == {"move_to_escalation_queue", "notify_manager"}
    assert all(t.deadline == T0 + H for t in timers)


def test_timer_keys_name_ticket_metric_cycle_kind_and_level() -> None:
    timers = timers_for(running_clock(URGENT, T0), URGENT)
    assert [t.key for t in timers] == [
        f"{TICKET}:first_response:1:warning:0",
        f"{TICKET}:first_response:1:breach:0",
        f"{TICKET}:first_response:1:escalation:1",
        f"{TICKET}:first_response:1:escalation:2",
    ]
    assert (
        timer_key(TICKET, "resolution", 3, "escalation", 2) == f"{TICKET}:resolution:3:escalation:2"
    )


def test_keys_stay_the_same_when_a_pause_moves_the_due_times() -> None:
    c = running_clock(URGENT, T0)
    before = timers_for(c, URGENT)
    c.pause(T0 + 10 * M)
    assert timers_for(c, URGENT) == []
    c.resume(T0 + 2 * H)
    after = timers_for(c, URGENT)
    assert [t.key for t in after] == [t.key for t in before]
    assert [t.due_at - b.due_at for t, b in zip(after, before, strict=True)] == [110 * M] * 4


def test_a_new_next_response_cycle_gets_new_keys() -> None:
    ticket, _ = TicketClocks.open(TICKET, URGENT.targets, DEFAULT_CALENDAR, T0)
    ticket.agent_reply(T0 + 5 * M)
    ticket.customer_message(T0 + H)
    first_cycle = {t.key for t in timers_for(ticket.clocks["next_response"], URGENT)}
    ticket.agent_reply(T0 + H + 5 * M)
    assert timers_for(ticket.clocks["next_response"], URGENT) == []
    ticket.customer_message(T0 + 2 * H)
    second_cycle = {t.key for t in timers_for(ticket.clocks["next_response"], URGENT)}
    assert first_cycle.isdisjoint(second_cycle)
    assert all(":next_response:2:" in key for key in second_cycle)


def test_overdue_clock_still_lists_its_past_timers_for_the_scheduler_to_deduplicate() -> None:
    c = running_clock(URGENT, T0)
    c.observe(T0 + 5 * H)
    assert [t.kind for t in timers_for(c, URGENT)] == [
        "warning",
        "breach",
        "escalation",
        "escalation",
    ]


def test_fulfilled_clock_needs_no_timers() -> None:
    c = running_clock(URGENT, T0)
    c.fulfill(T0 + 10 * M)
    assert timers_for(c, URGENT) == []


def test_warning_due_at_lunch_is_deferred_to_the_afternoon_opening() -> None:
    policy = replace(URGENT, targets={"first_response": 2 * H}, warn_at_share=0.75)
    start = datetime(2025, 3, 3, 10, 30, tzinfo=SHANGHAI)
    timers = timers_for(running_clock(policy, start, CHINA_OFFICE_CALENDAR), policy)
    due = {(t.kind, t.level): t.due_at.astimezone(SHANGHAI) for t in timers}
    # 1.5 h of business time ends at 12:00, the start of lunch; the team is back at 13:30.
    assert due[("warning", 0)] == datetime(2025, 3, 3, 13, 30, tzinfo=SHANGHAI)
    assert due[("breach", 0)] == datetime(2025, 3, 3, 14, tzinfo=SHANGHAI)
    assert due[("escalation", 1)] == datetime(2025, 3, 3, 14, tzinfo=SHANGHAI)
    assert due[("escalation", 2)] == datetime(2025, 3, 3, 15, tzinfo=SHANGHAI)


def test_notifying_levels_after_closing_wait_for_the_next_opening_and_stay_in_order() -> None:
    ladder = (
        EscalationLevel(1, timedelta(0), frozenset({"notify_supervisor"})),
        EscalationLevel(2, 30 * M, frozenset({"raise_priority"})),
        EscalationLevel(3, 20 * H, frozenset({"move_to_escalation_queue"})),
    )
    policy = replace(URGENT, targets={"first_response": 2 * H}, escalation=ladder)
    start = datetime(2025, 3, 3, 16, tzinfo=SHANGHAI)
    timers = timers_for(running_clock(policy, start, CHINA_OFFICE_CALENDAR), policy)
    due = [(t.kind, t.level, t.due_at.astimezone(SHANGHAI)) for t in timers]
    assert due[1:] == [
        ("breach", 0, datetime(2025, 3, 3, 18, tzinfo=SHANGHAI)),  # at closing time
        # notify waits for 09:00; the raise_priority level after it may not overtake it
        ("escalation", 1, datetime(2025, 3, 4, 9, tzinfo=SHANGHAI)),
        ("escalation", 2, datetime(2025, 3, 4, 9, tzinfo=SHANGHAI)),
        # no notification: wall time after the breach, whatever the office hours
        ("escalation", 3, datetime(2025, 3, 4, 14, tzinfo=SHANGHAI)),
    ]


def test_escalation_with_a_negative_offset_fires_before_the_breach() -> None:
    ladder = (EscalationLevel(1, -15 * M, frozenset({"notify_supervisor"})),)
    policy = replace(URGENT, escalation=ladder)
    timers = timers_for(running_clock(policy, T0), policy)
    assert [(t.kind, t.due_at) for t in timers] == [
        ("warning", T0 + 30 * M),
        ("escalation", T0 + 45 * M),
        ("breach", T0 + H),
    ]


def test_raise_priority_target_is_carried_on_the_timer() -> None:
    ladder = (EscalationLevel(1, timedelta(0), frozenset({"raise_priority"}), "urgent"),)
    policy = replace(URGENT, escalation=ladder)
    (level,) = [t for t in timers_for(running_clock(policy, T0), policy) if t.level == 1]
    assert level.raise_priority_to == "urgent"
