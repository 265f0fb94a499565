"""A ticket's conversation: the agents' replies and internal notes beside the customer's
contacts, decided without I/O. What a reply stores and publishes (`Message`, `reply_events`),
who a note mentions (`mentions`), how a canned response's placeholders are filled in
(`render`), how a reply's delivery state moves (`next_delivery_state`) and whether a
messaging channel's reply window is still open (`reply_window_closed`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ccshared.events.payloads import Channel, ContactReceived, DeliveryState, MessageOutbound

Direction = Literal["inbound", "outbound", "note"]
MessageKind = Literal["contact", "reply", "callback_request", "note"]


@dataclass(frozen=True, slots=True)
class ConversationRules:
    """The settings replies and notes are held to (`ROUTER_MESSAGE_MAX_BYTES`,
    `ROUTER_REPLY_WINDOW_HOURS`)."""

    max_bytes: int = 64 * 1024
    reply_window_hours: Mapping[str, float] = field(default_factory=dict)


class TextRefused(ValueError):
    """A reply's or note's text that is empty (`too_large` False) or over the size limit."""

    def __init__(self, message: str, *, too_large: bool) -> None:
        super().__init__(message)
        self.too_large = too_large


def checked_text(text: str, rules: ConversationRules) -> str:
    """The text as given, or `TextRefused`: blank, or more than `max_bytes` of UTF-8."""
    if not text.strip():
        raise TextRefused("the text is empty", too_large=False)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > rules.max_bytes:
        raise TextRefused(
            f"the text is {size} bytes of UTF-8, more than {rules.max_bytes}", too_large=True
        )
    return text


# --- the customer's contacts ---------------------------------------------------------------

_ATTACHMENT_FIELDS = ("filename", "content_type", "size_bytes", "url", "ref")
MAX_ATTACHMENTS = 100


def contact_sender(contact: ContactReceived) -> dict[str, str] | None:
    """Who sent the contact, as intake gave it: name, email, phone, social handle (an e-mail's
    From address if the hints have none)."""
    sender = {k: v for k, v in contact.customer.model_dump().items() if v and k != "account_id"}
    mailbox = contact.channel_data.get("from")
    if contact.channel == "email" and isinstance(mailbox, dict) and "email" not in sender:
        address = mailbox.get("address")
        if isinstance(address, str) and address:
            sender["email"] = address
    return sender or None


def contact_attachments(contact: ContactReceived) -> list[dict[str, Any]] | None:
    """What is known of the contact's attachments (`channel_data.attachments`: name, type,
    size, where it is kept), never their content; None if it has none."""
    found = contact.channel_data.get("attachments")
    if not isinstance(found, list):
        return None
    kept = [
        {k: a[k] for k in _ATTACHMENT_FIELDS if a.get(k) is not None}
        for a in found[:MAX_ATTACHMENTS]
        if isinstance(a, dict)
    ]
    return kept or None


# --- mentions -------------------------------------------------------------------------------

# `@<agent id>` in a note: an agent id as the API takes it (a letter or digit, then letters,
# digits, `.`, `_`, `:`, `-`, 64 at most), after the start of the text or any character that
# cannot be part of an e-mail address's local part (so `amy@shop.example` mentions nobody). A
# mention ends at the first other character; `.`, `:` and `-` at its end are sentence
# punctuation, not part of the id (`thanks @amy.` mentions amy).
_MENTION = re.compile(r"(?<![A-Za-z0-9._%+\-@])@([A-Za-z0-9][A-Za-z0-9._:\-]*)")
MAX_ID = 64


def mentions(text: str) -> list[str]:
    """The agent ids a note mentions, each once, in the order they first appear."""
    found: list[str] = []
    for match in _MENTION.finditer(text):
        agent_id = match.group(1).rstrip(".:-")[:MAX_ID]
        if agent_id and agent_id not in found:
            found.append(agent_id)
    return found


# --- canned responses -----------------------------------------------------------------------

PLACEHOLDERS = ("customer_name", "ticket_number", "agent_name")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What stands in for a name nobody gave, by the response's language.
_NO_NAME = {"zh": "客户", "en": "customer"}


def unknown_placeholders(body: str) -> list[str]:
    """The `{name}`s of a canned response that the router does not fill in."""
    return sorted({m.group(1) for m in _PLACEHOLDER.finditer(body)} - set(PLACEHOLDERS))


def ticket_number(ticket_id: uuid.UUID) -> str:
    """The short number an agent and a customer quote: the ticket id's first 8 hex digits."""
    return ticket_id.hex[:8].upper()


def render(body: str, values: Mapping[str, str | None], language: str | None = None) -> str:
    """The canned response with its placeholders filled in; a name nobody gave reads
    "customer" (客户 in Chinese); any other `{...}` is left as written."""
    fallback = _NO_NAME.get((language or "en")[:2], _NO_NAME["en"])

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            return match.group(0)
        return values.get(name) or fallback

    return _PLACEHOLDER.sub(fill, body)


# --- delivery states ------------------------------------------------------------------------

# How far along each state is: a report of a state not further along than the stored one is
# ignored (a late `sent` after `delivered`, a redelivered event). `failed` ends the chain
# unless the message was already delivered or read (then it is too late to fail).
_RANK: dict[str, int] = {"queued": 0, "sent": 1, "failed": 2, "delivered": 2, "read": 3}


def next_delivery_state(current: str | None, reported: DeliveryState) -> DeliveryState | None:
    """The state to store after `reported`, or None if it changes nothing (backwards, the
    same again, or after the message failed or was already delivered)."""
    if current is None:
        return reported
    if current == "failed":
        return None  # failed is final: the platform does not retry after it says so
    if reported == "failed":
        return "failed" if current in ("queued", "sent") else None
    return reported if _RANK[reported] > _RANK[current] else None


# --- reply windows --------------------------------------------------------------------------


def reply_window_closed(
    windows: Mapping[str, float], channel: str, last_inbound_at: datetime | None, now: datetime
) -> timedelta | None:
    """How long ago the channel's reply window closed (None: it is open, or the channel has
    none). A messaging platform accepts a business's message only within a window after the
    customer's last message (e.g. 24 h); `windows` maps a channel to its hours."""
    hours = windows.get(channel)
    if hours is None or last_inbound_at is None:
        return None
    closes = last_inbound_at + timedelta(hours=hours)
    return now - closes if now > closes else None


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """An agent's reply or internal note, as stored in the conversation."""

    id: uuid.UUID
    ticket_id: uuid.UUID
    direction: Literal["outbound", "note"]
    kind: Literal["reply", "callback_request", "note"]
    author: str
    channel: Channel
    text: str
    created_at: datetime
    canned_response_id: uuid.UUID | None = None
    reply_to_contact_id: uuid.UUID | None = None
    mentions: tuple[str, ...] = ()
    delivery_state: DeliveryState | None = None
    data: dict[str, Any] = field(default_factory=dict)


def reply_message(
    message_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    author: str,
    channel: Channel,
    text: str,
    at: datetime,
    canned_response_id: uuid.UUID | None,
    reply_to_contact_id: uuid.UUID | None,
) -> Message:
    """A reply, queued for delivery; on the phone channel a call-back request."""
    return Message(
        id=message_id,
        ticket_id=ticket_id,
        direction="outbound",
        kind="callback_request" if channel == "phone" else "reply",
        author=author,
        channel=channel,
        text=text,
        created_at=at,
        canned_response_id=canned_response_id,
        reply_to_contact_id=reply_to_contact_id,
        delivery_state="queued",
    )


def note_message(
    message_id: uuid.UUID,
    ticket_id: uuid.UUID,
    *,
    author: str,
    channel: Channel,
    text: str,
    at: datetime,
    mentioned: list[str],
) -> Message:
    """An internal note: never delivered, never shown to the customer."""
    return Message(
        id=message_id,
        ticket_id=ticket_id,
        direction="note",
        kind="note",
        author=author,
        channel=channel,
        text=text,
        created_at=at,
        mentions=tuple(mentioned),
    )


def outbound(
    message: Message,
    *,
    customer_id: uuid.UUID,
    subject: str | None,
    language: str | None,
) -> MessageOutbound:
    """What intake must deliver of a reply (`message.outbound`)."""
    assert message.kind != "note", "a note is never delivered"
    return MessageOutbound(
        message_id=message.id,
        ticket_id=message.ticket_id,
        customer_id=customer_id,
        channel=message.channel,
        kind="callback_request" if message.kind == "callback_request" else "reply",
        author=message.author,
        text=message.text,
        subject=reply_subject(subject) if message.channel == "email" else None,
        language=language,
        reply_to_contact_id=message.reply_to_contact_id,
        created_at=message.created_at,
    )


def reply_subject(subject: str | None) -> str | None:
    """An e-mail reply's subject: the customer's with one `Re: `."""
    if not subject:
        return None
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"
