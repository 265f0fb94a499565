"""What a ticket looks like in a list or an offer (the UI's one-call screens): its subject or
the first line of its first contact, cut to a line's length, and when its wait began."""

from __future__ import annotations

from datetime import datetime

from ccshared.events.payloads import TicketStatus

SUBJECT_LINE_CHARS = 140
ELLIPSIS = "…"
# How much of the text the first line is looked for in: the line is written with every new
# ticket, on the contact path, so its cost must not grow with a long e-mail's text.
_LOOK_IN_CHARS = 4_000
# A customer waits for an agent while the ticket is in a queue or offered; otherwise since
# their last message.
_WAITING_FOR_AN_AGENT: frozenset[TicketStatus] = frozenset({"new", "queued", "assigned"})


def subject_line(subject: str | None, text: str | None) -> str | None:
    """The subject, else the first non-blank line of the text, whitespace collapsed, cut to
    `SUBJECT_LINE_CHARS` (an ellipsis marks the cut); None when both are blank. Only the
    text's first `_LOOK_IN_CHARS` characters are read."""
    line = (subject or "")[:_LOOK_IN_CHARS].strip()
    if not line:
        head = (text or "")[:_LOOK_IN_CHARS]
        line = next((ln for ln in head.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) > SUBJECT_LINE_CHARS:
        line = line[: SUBJECT_LINE_CHARS - 1].rstrip() + ELLIPSIS
    return line or None


def customer_display_name(name: str | None) -> str | None:
    """The name a contact gave, trimmed to 200 characters; None when blank."""
    cleaned = " ".join((name or "")[:1000].split())[:200]
    return cleaned or None


def waiting_since(
    status: TicketStatus, queued_at: datetime | None, last_contact_at: datetime
) -> datetime:
    """Since when the customer waits: in a queue or on offer, since the ticket was queued
    (its `queued_at`); otherwise since their last message."""
    if status in _WAITING_FOR_AN_AGENT and queued_at is not None:
        return queued_at
    return last_contact_at
