from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccshared.events.payloads import SlaMetric
from sla.domain.calendar import CHINA_OFFICE_CALENDAR, DEFAULT_CALENDAR, BusinessCalendar
from sla.domain.clock import SlaClock, TicketClocks

H = timedelta(hours=1)
M = timedelta(minutes=1)
T0 = datetime(2025, 3, 3, 1, tzinfo=UTC)  # Monday 09:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
TICKET = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
TARGETS: dict[SlaMetric, timedelta] = {
    "first_response": H,
    "next_response": 30 * M,
    "resolution": 8 * H,
}


def clock(
    target: timedelta = 4 * H, calendar: BusinessCalendar = DEFAULT_CALENDAR, share: float = 0.75
) -> SlaClock:
    return SlaClock(TICKET, "resolution", target, calendar, share)


def kinds(c: SlaClock) -> list[str]:
    return [e.kind for e in c.timeline]


# --- a single clock -----------------------------------------------------------------------------


def test_started_clock_has_deadline_warning_and_remaining_time() -> None:
    c = clock()
    assert c.start(T0)
    assert c.deadline == T0 + 4 * H
    assert c.warning_at == T0 + 3 * H
    assert c.remaining_at(T0 + H) == 3 * H
    assert c.status(T0 + H) == "running"
    assert c.status(T0 + 3 * H) == "at_risk"
    assert c.status(T0 + 4 * H) == "breached"


def test_paused_time_does_not_count_towards_the_target() -> None:
    c = clock()
    c.start(T0)
    c.pause(T0 + H)
    assert c.deadline is None
    assert c.status(T0 + 2 * H) == "paused"
    assert c.consumed_at(T0 + 2 * H) == H
    c.resume(T0 + 3 * H)
    assert c.deadline == T0 + 6 * H
    assert c.consumed_at(T0 + 4 * H) == 2 * H
    assert kinds(c) == ["started", "paused", "resumed"]


def test_repeated_events_are_no_ops() -> None:
    c = clock()
    assert c.start(T0)
    assert not c.start(T0 + H)
    assert c.pause(T0 + H)
    assert not c.pause(T0 + 2 * H)
    assert c.resume(T0 + 2 * H)
    assert not c.resume(T0 + 3 * H)
    assert kinds(c) == ["started", "paused", "resumed"]


def test_fulfilled_before_deadline_is_met_and_keeps_its_deadline() -> None:
    c = clock()
    c.start(T0)
    c.fulfill(T0 + 2 * H)
    assert c.status(T0 + 10 * H) == "met"
    assert c.deadline == T0 + 4 * H
    assert c.timeline[-1].kind == "fulfilled"
    assert c.timeline[-1].note == "met"


def test_clock_fulfilled_while_paused_reports_the_deadline_it_would_have_had() -> None:
    c = clock()
    c.start(T0)
    c.pause(T0 + H)
    c.fulfill(T0 + 30 * H)
    assert c.deadline == T0 + 33 * H
    assert c.status(T0 + 30 * H) == "met"
    assert kinds(c) == ["started", "paused", "fulfilled"]


def test_fulfilled_exactly_at_the_deadline_is_met() -> None:
    c = clock()
    c.start(T0)
    c.fulfill(T0 + 4 * H)
    assert c.status(T0 + 4 * H) == "met"
    assert "breached" not in kinds(c)


def test_late_fulfilment_records_the_warning_and_breach_it_passed() -> None:
    c = clock()
    c.start(T0)
    c.fulfill(T0 + 5 * H)
    assert kinds(c) == ["started", "warned", "breached", "fulfilled"]
    assert [e.at for e in c.timeline] == [T0, T0 + 3 * H, T0 + 4 * H, T0 + 5 * H]
    assert c.status(T0 + 5 * H) == "breached"
    assert c.timeline[-1].note == "late"


def test_observe_records_warning_and_breach_once_at_their_moments() -> None:
    c = clock()
    c.start(T0)
    assert c.observe(T0 + H) == []
    warned = c.observe(T0 + 3 * H + M)
    assert [(e.kind, e.at, e.consumed) for e in warned] == [("warned", T0 + 3 * H, 3 * H)]
    breached = c.observe(T0 + 4 * H)
    assert [(e.kind, e.at) for e in breached] == [("breached", T0 + 4 * H)]
    assert c.observe(T0 + 9 * H) == []
    assert c.breached_at == T0 + 4 * H


def test_breach_stays_recorded_while_paused() -> None:
    c = clock()
    c.start(T0)
    c.pause(T0 + 5 * H)
    assert c.status(T0 + 6 * H) == "breached"
    assert kinds(c) == ["started", "warned", "breached", "paused"]


def test_resumed_overdue_clock_keeps_its_real_deadline() -> None:
    c = clock()
    c.start(T0)
    c.pause(T0 + 5 * H)
    c.resume(T0 + 9 * H)
    assert (c.deadline, c.warning_at, c.breached_at) == (T0 + 4 * H, T0 + 3 * H, T0 + 4 * H)
    assert kinds(c) == ["started", "warned", "breached", "paused", "resumed"]


def test_deadline_counts_business_hours_only() -> None:
    friday_5pm = datetime(2025, 3, 7, 17, tzinfo=SHANGHAI)
    c = clock(2 * H, CHINA_OFFICE_CALENDAR)
    c.start(friday_5pm)
    assert c.deadline == datetime(2025, 3, 10, 10, tzinfo=SHANGHAI)
    assert c.remaining_at(datetime(2025, 3, 9, 12, tzinfo=SHANGHAI)) == H  # Sunday: no change


def test_retarget_moves_the_deadline_and_explains_why() -> None:
    c = clock()
    c.start(T0)
    assert c.retarget(T0 + H, 8 * H)
    assert c.deadline == T0 + 8 * H
    assert c.warning_at == T0 + 6 * H
    entry = c.timeline[-1]
    assert (entry.kind, entry.consumed, entry.deadline) == ("retargeted", H, T0 + 8 * H)
    assert entry.note == "target 4:00:00 -> 8:00:00"
    assert not c.retarget(T0 + 2 * H, 8 * H)  # nothing changed


def test_retarget_to_a_target_already_used_up_breaches_at_once() -> None:
    c = clock()
    c.start(T0)
    c.retarget(T0 + 150 * M, 2 * H)
    assert c.breached_at == T0 + 150 * M
    assert kinds(c)[-3:] == ["retargeted", "warned", "breached"]


def test_retarget_of_a_paused_clock_past_its_new_target_breaches() -> None:
    c = clock()
    c.start(T0)
    c.pause(T0 + 2 * H)
    c.retarget(T0 + 3 * H, H)
    assert c.breached_at == T0 + 3 * H
    assert c.status(T0 + 3 * H) == "breached"


def test_breach_is_kept_when_a_retarget_moves_the_deadline_later() -> None:
    c = clock()
    c.start(T0)
    c.observe(T0 + 5 * H)
    c.retarget(T0 + 5 * H, 10 * H)
    assert c.deadline == T0 + 10 * H
    assert c.status(T0 + 6 * H) == "breached"


def test_retarget_to_a_new_calendar_keeps_time_counted_by_the_old_one() -> None:
    saturday_10am = datetime(2025, 3, 8, 10, tzinfo=SHANGHAI)
    c = clock(4 * H, DEFAULT_CALENDAR)
    c.start(saturday_10am)
    c.retarget(saturday_10am + 2 * H, 4 * H, CHINA_OFFICE_CALENDAR)
    # 2 h consumed around the clock on Saturday; 2 h left in office hours from Monday 09:00.
    assert c.deadline == datetime(2025, 3, 10, 11, tzinfo=SHANGHAI)
    assert "calendar 24x7 -> china-office" in c.timeline[-1].note


def test_event_stamped_before_the_last_entry_counts_at_the_last_entry() -> None:
    c = clock()
    c.start(T0)
    c.pause(T0 + 2 * H)
    c.resume(T0 + H)  # producer clock skew
    assert c.timeline[-1].at == T0 + 2 * H
    assert c.deadline == T0 + 4 * H  # 2 h consumed, 2 h left from the (clamped) resume


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        clock().start(datetime(2025, 3, 3, 9))


@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=12))
def test_consumed_time_is_the_sum_of_running_stretches(gaps: list[int]) -> None:
    c = clock(1000 * H)
    c.start(T0)
    t, running_total, running = T0, timedelta(0), True
    for minutes in gaps:
        t += minutes * M
        if running:
            running_total += minutes * M
            c.pause(t)
        else:
            c.resume(t)
        running = not running
    assert c.consumed_at(t) == running_total
    if running:
        assert c.deadline == t + 1000 * H - running_total


# --- a ticket's clocks --------------------------------------------------------------------------


def opened(targets: Mapping[SlaMetric, timedelta] = TARGETS) -> TicketClocks:
    ticket, changed = TicketClocks.open(TICKET, targets, DEFAULT_CALENDAR, T0)
    assert {c.metric for c in changed} == {"first_response", "resolution"} & set(targets)
    return ticket


def test_opening_starts_first_response_and_resolution_but_not_next_response() -> None:
    ticket = opened()
    assert ticket.clocks["first_response"].deadline == T0 + H
    assert ticket.clocks["resolution"].deadline == T0 + 8 * H
    assert ticket.clocks["next_response"].state == "not_started"


def test_customer_message_before_the_first_reply_starts_nothing() -> None:
    ticket = opened()
    assert ticket.customer_message(T0 + 10 * M) == []
    assert ticket.clocks["next_response"].state == "not_started"


def test_first_agent_reply_fulfils_the_first_response() -> None:
    ticket = opened()
    changed = ticket.agent_reply(T0 + 20 * M)
    assert [c.metric for c in changed] == ["first_response"]
    assert ticket.clocks["first_response"].status(T0 + 20 * M) == "met"


def test_next_response_starts_on_an_unanswered_customer_message_and_ignores_a_second_one() -> None:
    ticket = opened()
    ticket.agent_reply(T0 + 20 * M)
    ticket.customer_message(T0 + H)
    nr = ticket.clocks["next_response"]
    assert (nr.cycle, nr.deadline) == (1, T0 + H + 30 * M)
    assert ticket.customer_message(T0 + H + 10 * M) == []
    assert (nr.cycle, nr.deadline) == (1, T0 + H + 30 * M)


def test_any_agent_reply_fulfils_next_response_and_the_next_message_starts_a_new_cycle() -> None:
    ticket = opened()
    ticket.agent_reply(T0 + 20 * M)
    ticket.customer_message(T0 + H)
    ticket.agent_reply(T0 + H + 40 * M)  # late: 30 minutes was the target
    nr = ticket.clocks["next_response"]
    assert nr.status(T0 + 2 * H) == "breached"
    ticket.customer_message(T0 + 3 * H)
    assert (nr.cycle, nr.state, nr.breached_at) == (2, "running", None)
    assert [(e.cycle, e.kind) for e in nr.timeline] == [
        (1, "started"),
        (1, "warned"),
        (1, "breached"),
        (1, "fulfilled"),
        (2, "started"),
    ]


def test_pending_customer_pauses_only_the_resolution_clock() -> None:
    ticket = opened()
    ticket.agent_reply(T0 + 20 * M)
    changed = ticket.status_changed("in_progress", "pending_customer", T0 + H)
    assert [c.metric for c in changed] == ["resolution"]
    ticket.status_changed("pending_customer", "in_progress", T0 + 25 * H)
    assert ticket.clocks["resolution"].deadline == T0 + 32 * H


def test_resolving_fulfils_resolution_and_cancels_a_reply_still_owed() -> None:
    ticket = opened()
    ticket.agent_reply(T0 + 20 * M)
    ticket.customer_message(T0 + H)
    ticket.resolved(T0 + 2 * H)
    assert ticket.clocks["resolution"].status(T0 + 2 * H) == "met"
    assert ticket.clocks["next_response"].status(T0 + 2 * H) == "cancelled"


def test_reopen_resumes_resolution_with_the_time_already_consumed() -> None:
    ticket = opened()
    ticket.resolved(T0 + 3 * H)
    ticket.reopened(T0 + 10 * H)
    resolution = ticket.clocks["resolution"]
    assert resolution.consumed_at(T0 + 10 * H) == 3 * H
    assert resolution.deadline == T0 + 15 * H
    assert resolution.timeline[-1].note == "ticket reopened"
    assert resolution.cycle == 1


def test_closing_an_unresolved_ticket_cancels_every_running_clock() -> None:
    ticket = opened()
    changed = ticket.closed(T0 + H)
    assert {c.metric for c in changed} == {"first_response", "resolution"}
    assert all(c.state in ("cancelled", "not_started") for c in ticket.clocks.values())


def test_metrics_without_a_target_have_no_clock() -> None:
    ticket = opened({"resolution": 8 * H})
    ticket.agent_reply(T0 + H)
    assert ticket.customer_message(T0 + 2 * H) == []
    assert set(ticket.clocks) == {"resolution"}


def test_ticket_retarget_cancels_clocks_the_new_policy_drops() -> None:
    ticket = opened()
    changed = ticket.retarget({"resolution": 4 * H}, DEFAULT_CALENDAR, T0 + 10 * M)
    assert {c.metric for c in changed} == {"first_response", "resolution"}
    assert ticket.clocks["first_response"].state == "cancelled"
    assert ticket.clocks["resolution"].deadline == T0 + 4 * H
