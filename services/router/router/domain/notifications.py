"""Notifications that reach people: who is told what, decided without I/O. Each is stored for
one recipient (a user id: an agent's id or a supervisor's token subject) and published as
`notification.created` for the console's live view.

Who: an escalation's `notify_supervisor` tells the ticket's queue's supervisors and
`notify_manager` its managers (both lists are part of the queue, `PUT /v1/queues/{id}`); a
note's @mention the mentioned agent; a new offer and a missed offer the offer's agent; a
detractor follow-up the follow-up ticket's owner and its queue's supervisors; a failed
delivery the ticket's owner (its assignee if it has no owner)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ccshared.events.payloads import (
    NotificationCreated,
    NotificationEmailRequested,
    NotificationKind,
    SlaEscalated,
)
from ccshared.ids import uuid7


@dataclass(frozen=True, slots=True)
class QueueStaff:
    """Who answers for a queue: its supervisors and managers (user ids)."""

    supervisors: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    recipient: str
    kind: NotificationKind
    ticket_id: uuid.UUID | None
    text: str
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def event(self) -> NotificationCreated:
        return NotificationCreated(
            notification_id=self.id,
            recipient_id=self.recipient,
            kind=self.kind,
            ticket_id=self.ticket_id,
            text=self.text,
            data=self.data,
            created_at=self.created_at,
        )


# Notifications of an event that may be delivered twice (an escalation) have ids derived from
# what they tell, so a repeated event is recognised (`escalation`).
_NAMESPACE = uuid.UUID("5f0c1c1e-6a43-4d0b-9d55-8b7c2f0a9e31")


_SUBJECTS: dict[str, str] = {
    "escalation": "Escalation",
    "mention": "You were mentioned",
    "new_offer": "New offer",
    "missed_offer": "Missed offer",
    "follow_up": "Follow-up",
    "delivery_failed": "Delivery failed",
}


def email_request(notification: Notification, to: str) -> NotificationEmailRequested:
    """The e-mail of a notification for a recipient who opted in (sent by intake's SMTP path)."""
    ticket = f" (ticket {notification.ticket_id.hex[:8].upper()})" if notification.ticket_id else ""
    return NotificationEmailRequested(
        notification_id=notification.id,
        recipient_id=notification.recipient,
        to=to,
        subject=f"[Contact center] {_SUBJECTS[notification.kind]}{ticket}",
        text=notification.text,
        ticket_id=notification.ticket_id,
        created_at=notification.created_at,
    )


def notify(
    recipients: Iterable[str | None],
    kind: NotificationKind,
    ticket_id: uuid.UUID | None,
    text: str,
    at: datetime,
    data: dict[str, Any] | None = None,
    *,
    key: str | None = None,
) -> list[Notification]:
    """One notification per recipient (each once, in order; none for a missing one). With
    `key`, each one's id is derived from it and the recipient (the same event, the same ids)."""
    seen: list[str] = []
    for recipient in recipients:
        if recipient and recipient not in seen:
            seen.append(recipient)
    return [
        Notification(
            uuid.uuid5(_NAMESPACE, f"{key}:{r}") if key else uuid7(),
            r,
            kind,
            ticket_id,
            text,
            at,
            dict(data or {}),
        )
        for r in seen
    ]


def escalation(
    ticket_id: uuid.UUID, queue_id: str | None, escalated: SlaEscalated, staff: QueueStaff
) -> list[Notification]:
    """`notify_supervisor`: the queue's supervisors; `notify_manager`: its managers. The ids
    are the escalation's (ticket, metric, level, time) and the recipient's: a redelivered
    escalation makes the same ones, which the caller skips."""
    why = f"SLA {escalated.metric} escalation level {escalated.level}"
    data = {"metric": escalated.metric, "level": escalated.level, "queue_id": queue_id}
    key = f"escalation:{ticket_id}:{escalated.metric}:{escalated.level}:{escalated.at.isoformat()}"
    found: list[Notification] = []
    for action, people in (
        ("notify_supervisor", staff.supervisors),
        ("notify_manager", staff.managers),
    ):
        if action in escalated.actions:
            text = f"{why} on a ticket of queue {queue_id}"
            found += notify(people, "escalation", ticket_id, text, escalated.at, data, key=key)
    return _once_each(found)


def _once_each(notifications: list[Notification]) -> list[Notification]:
    """A supervisor who is also the queue's manager is told once."""
    seen: set[str] = set()
    kept = []
    for n in notifications:
        if n.recipient not in seen:
            seen.add(n.recipient)
            kept.append(n)
    return kept


def mention(
    mentioned: Iterable[str], ticket_id: uuid.UUID, author: str, message_id: uuid.UUID, at: datetime
) -> list[Notification]:
    return notify(
        mentioned,
        "mention",
        ticket_id,
        f"{author} mentioned you in a note",
        at,
        {"message_id": str(message_id), "author": author},
    )


def new_offer(
    agent_id: str, ticket_id: uuid.UUID, offer_id: uuid.UUID, at: datetime
) -> Notification:
    return notify(
        [agent_id],
        "new_offer",
        ticket_id,
        "A ticket is offered to you",
        at,
        {"offer_id": str(offer_id)},
    )[0]


def missed_offer(
    agent_id: str, ticket_id: uuid.UUID, offer_id: uuid.UUID, at: datetime
) -> Notification:
    return notify(
        [agent_id],
        "missed_offer",
        ticket_id,
        "An offer to you timed out; the ticket went back to its queue",
        at,
        {"offer_id": str(offer_id)},
    )[0]


def follow_up(
    ticket_id: uuid.UUID,
    owner: str | None,
    staff: QueueStaff,
    reason: str,
    follows: uuid.UUID | None,
    at: datetime,
) -> list[Notification]:
    """A detractor's follow-up: its owner and its queue's supervisors."""
    text = (
        "A customer was unhappy with the answer: follow-up ticket opened"
        if reason == "detractor"
        else "A key-account call-back is due: follow-up ticket opened"
    )
    data = {"reason": reason, "follow_up_of": str(follows) if follows else None}
    return notify([owner, *staff.supervisors], "follow_up", ticket_id, text, at, data)


def delivery_failed(
    recipient: str | None,
    ticket_id: uuid.UUID,
    message_id: uuid.UUID,
    reason: str | None,
    at: datetime,
) -> list[Notification]:
    return notify(
        [recipient],
        "delivery_failed",
        ticket_id,
        f"A reply could not be delivered: {reason or 'no reason given'}",
        at,
        {"message_id": str(message_id), "reason": reason},
    )
