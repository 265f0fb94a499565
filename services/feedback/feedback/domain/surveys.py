"""When a resolved ticket's survey goes out, or why it does not: per-channel delays, one survey
per ticket, one per customer within a number of days, no survey for spam or duplicates, and the
reply window of messaging channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Channel = Literal["phone", "email", "chat", "social"]

# Messaging channels may only write to a customer shortly after the customer's last message
# (WhatsApp/WeChat-style 24 h service windows); e-mail and phone have no such window.
MESSAGING_CHANNELS: frozenset[str] = frozenset({"chat", "social"})

# Resolution codes and close reasons that mean there was no real customer conversation to rate.
NO_SURVEY_REASONS: frozenset[str] = frozenset({"spam", "duplicate"})

SuppressionReason = Literal[
    "already_surveyed_ticket",
    "customer_recently_surveyed",
    "spam_or_duplicate",
    "reply_window_closed",
]


@dataclass(frozen=True)
class SurveyPolicy:
    delays: Mapping[str, timedelta] = field(
        default_factory=lambda: {
            "phone": timedelta(hours=1),
            "email": timedelta(hours=2),
            "chat": timedelta(minutes=10),
            "social": timedelta(minutes=30),
        }
    )
    default_delay: timedelta = timedelta(hours=1)
    customer_quiet_period: timedelta = timedelta(days=30)
    reply_window: timedelta = timedelta(hours=24)
    # How long a sent survey's link stays valid, and when the one reminder goes out.
    link_ttl: timedelta = timedelta(days=14)
    reminder_after: timedelta | None = timedelta(days=3)

    def delay_for(self, channel: str) -> timedelta:
        return self.delays.get(channel, self.default_delay)


@dataclass(frozen=True)
class Scheduled:
    due_at: datetime
    # Messaging channels: the last moment a message may still be sent (None: no window).
    window_closes_at: datetime | None = None


@dataclass(frozen=True)
class Suppressed:
    reason: SuppressionReason


SurveyDecision = Scheduled | Suppressed


@dataclass(frozen=True)
class ResolvedTicketView:
    """What scheduling needs to know about the resolved ticket and its customer."""

    channel: str
    resolved_at: datetime
    resolution_code: str | None = None
    close_reason: str | None = None
    ticket_already_surveyed: bool = False
    customer_last_surveyed_at: datetime | None = None
    customer_last_message_at: datetime | None = None


def reply_window_closes_at(
    channel: str, last_customer_message_at: datetime | None, policy: SurveyPolicy
) -> datetime | None:
    if channel not in MESSAGING_CHANNELS:
        return None
    if last_customer_message_at is None:
        return None  # nothing known: let the integration refuse if the window is closed
    return last_customer_message_at + policy.reply_window


def is_spam_or_duplicate(*codes: str | None) -> bool:
    return any(c is not None and c.strip().lower() in NO_SURVEY_REASONS for c in codes)


def schedule_survey(ticket: ResolvedTicketView, policy: SurveyPolicy) -> SurveyDecision:
    """Decide at resolution time; suppression reasons are checked cheapest-to-explain first."""
    if ticket.ticket_already_surveyed:
        return Suppressed("already_surveyed_ticket")
    if is_spam_or_duplicate(ticket.resolution_code, ticket.close_reason):
        return Suppressed("spam_or_duplicate")
    if (
        ticket.customer_last_surveyed_at is not None
        and ticket.resolved_at - ticket.customer_last_surveyed_at < policy.customer_quiet_period
    ):
        return Suppressed("customer_recently_surveyed")
    due_at = ticket.resolved_at + policy.delay_for(ticket.channel)
    closes = reply_window_closes_at(ticket.channel, ticket.customer_last_message_at, policy)
    if closes is not None:
        if closes <= ticket.resolved_at:
            return Suppressed("reply_window_closed")
        # Better a survey a little early than none: pull it forward into the window.
        due_at = min(due_at, closes)
    return Scheduled(due_at, closes)


def may_send_now(
    channel: str, now: datetime, last_customer_message_at: datetime | None, policy: SurveyPolicy
) -> bool:
    """Checked again when the survey is due: the window may have closed meanwhile."""
    closes = reply_window_closes_at(channel, last_customer_message_at, policy)
    return closes is None or now <= closes


def reminder_due_at(sent_at: datetime, policy: SurveyPolicy) -> datetime | None:
    return None if policy.reminder_after is None else sent_at + policy.reminder_after
