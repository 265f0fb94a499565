from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback.domain.surveys import (
    ResolvedTicketView,
    Scheduled,
    Suppressed,
    SurveyPolicy,
    may_send_now,
    reminder_due_at,
    schedule_survey,
)

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)
H = timedelta(hours=1)
POLICY = SurveyPolicy(
    delays={"email": 2 * H, "chat": timedelta(minutes=10)}, customer_quiet_period=timedelta(days=30)
)


def view(**overrides: object) -> ResolvedTicketView:
    base: dict[str, object] = {"channel": "email", "resolved_at": T0}
    return ResolvedTicketView(**{**base, **overrides})  # type: ignore[arg-type]


def test_survey_is_due_after_the_channels_delay() -> None:
    assert schedule_survey(view(), POLICY) == Scheduled(T0 + 2 * H)
    assert schedule_survey(view(channel="chat", customer_last_message_at=T0), POLICY) == Scheduled(
        T0 + timedelta(minutes=10), T0 + 24 * H
    )


def test_unknown_channel_delay_falls_back_to_the_default() -> None:
    decision = schedule_survey(view(channel="phone"), POLICY)
    assert decision == Scheduled(T0 + POLICY.default_delay)


def test_second_survey_for_the_same_ticket_is_suppressed() -> None:
    assert schedule_survey(view(ticket_already_surveyed=True), POLICY) == Suppressed(
        "already_surveyed_ticket"
    )


def test_customer_surveyed_within_the_quiet_period_gets_none() -> None:
    recent = view(customer_last_surveyed_at=T0 - timedelta(days=29))
    old = view(customer_last_surveyed_at=T0 - timedelta(days=30))
    assert schedule_survey(recent, POLICY) == Suppressed("customer_recently_surveyed")
    assert isinstance(schedule_survey(old, POLICY), Scheduled)


@pytest.mark.parametrize(
    ("code", "reason"),
    [("spam", None), ("Duplicate", None), (None, "spam"), ("solved", "duplicate")],
)
def test_spam_or_duplicate_tickets_get_no_survey(code: str | None, reason: str | None) -> None:
    assert schedule_survey(view(resolution_code=code, close_reason=reason), POLICY) == Suppressed(
        "spam_or_duplicate"
    )


def test_messaging_survey_is_pulled_into_the_reply_window() -> None:
    last = T0 - 23 * H - timedelta(minutes=55)  # window closes 5 minutes after resolution
    decision = schedule_survey(view(channel="chat", customer_last_message_at=last), POLICY)
    assert decision == Scheduled(T0 + timedelta(minutes=5), T0 + timedelta(minutes=5))


def test_messaging_survey_after_the_reply_window_closed_is_suppressed() -> None:
    last = T0 - 25 * H
    decision = schedule_survey(view(channel="social", customer_last_message_at=last), POLICY)
    assert decision == Suppressed("reply_window_closed")


def test_email_has_no_reply_window() -> None:
    old = view(channel="email", customer_last_message_at=T0 - timedelta(days=10))
    assert schedule_survey(old, POLICY) == Scheduled(T0 + 2 * H)
    assert may_send_now("email", T0 + timedelta(days=99), T0, POLICY)


def test_send_time_recheck_refuses_a_closed_window() -> None:
    assert may_send_now("chat", T0 + 24 * H, T0, POLICY)
    assert not may_send_now("chat", T0 + 24 * H + timedelta(seconds=1), T0, POLICY)


def test_one_reminder_after_the_configured_delay_or_none() -> None:
    assert reminder_due_at(T0, SurveyPolicy(reminder_after=timedelta(days=3))) == T0 + timedelta(
        days=3
    )
    assert reminder_due_at(T0, SurveyPolicy(reminder_after=None)) is None
