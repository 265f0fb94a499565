"""Threading: whether a new contact continues a ticket or opens a new one, decided from its
thread references (e-mail headers, chat session, social parent post) and, failing those, from
the customer's recent open ticket on the same channel. The db layer stores each ticket's
`thread_keys` and looks candidates up by `lookup_keys`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from ccshared.events.payloads import Channel, TicketStatus
from router.domain.lifecycle import OPEN_STATUSES

DEFAULT_SAME_CHANNEL_WINDOWS: Final[Mapping[Channel, timedelta]] = {
    "phone": timedelta(hours=24),
    "email": timedelta(hours=24),
    "chat": timedelta(hours=2),
    "social": timedelta(hours=24),
}
"""How long after an open ticket's last contact a new contact from the same customer on the
same channel, with no thread reference, is taken as part of it."""


@dataclass(frozen=True, slots=True)
class ContactThread:
    """A new contact's identity and thread references (from ContactReceived)."""

    channel: Channel
    customer_id: str
    received_at: datetime
    email_message_id: str | None = None
    email_in_reply_to: str | None = None
    email_references: tuple[str, ...] = ()
    chat_session_id: str | None = None
    social_platform: str | None = None
    social_post_id: str | None = None
    social_parent_post_id: str | None = None


@dataclass(frozen=True, slots=True)
class OpenTicketCandidate:
    """A ticket the db found for the contact: by a lookup key (`matched_keys`), or as the
    customer's recent ticket on the channel (no matched keys)."""

    ticket_id: str
    customer_id: str
    channel: Channel
    status: TicketStatus
    last_contact_at: datetime
    matched_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    """`join`: add the contact to `ticket_id`; `reopen`: the same, reopening the resolved
    ticket first; `open_new`: a new ticket, with `follow_up_of` set when the contact replies
    to a closed one."""

    action: Literal["join", "reopen", "open_new"]
    ticket_id: str | None
    follow_up_of: str | None
    matched_key: str | None
    reason: str


def email_key(message_id: str) -> str:
    """Also the key to store for each message an agent sends, so replies to it thread."""
    return f"email:{_message_id(message_id)}"


def chat_key(session_id: str) -> str:
    return f"chat:{session_id.strip()}"


def social_key(platform: str, post_id: str) -> str:
    return f"social:{platform.strip().lower()}:{post_id.strip()}"


def thread_keys(contact: ContactThread) -> list[str]:
    """The keys under which the contact's ticket becomes findable by later contacts."""
    keys: list[str] = []
    if contact.channel == "email" and contact.email_message_id:
        keys.append(email_key(contact.email_message_id))
    if contact.channel == "chat" and contact.chat_session_id:
        keys.append(chat_key(contact.chat_session_id))
    if contact.channel == "social" and contact.social_platform and contact.social_post_id:
        keys.append(social_key(contact.social_platform, contact.social_post_id))
    return _unique(k for k in keys if not k.endswith(":"))


def lookup_keys(contact: ContactThread) -> list[str]:
    """The keys to look open tickets up by, most specific first: for e-mail In-Reply-To, then
    References from the newest (last) to the oldest; the chat session; the parent post."""
    keys: list[str] = []
    if contact.channel == "email":
        parents = [contact.email_in_reply_to, *reversed(contact.email_references)]
        keys.extend(email_key(ref) for ref in parents if ref and _message_id(ref))
    elif contact.channel == "chat" and contact.chat_session_id:
        keys.append(chat_key(contact.chat_session_id))
    elif contact.channel == "social" and contact.social_platform and contact.social_parent_post_id:
        keys.append(social_key(contact.social_platform, contact.social_parent_post_id))
    return _unique(k for k in keys if not k.endswith(":"))


def decide_thread(
    contact: ContactThread,
    candidates: Sequence[OpenTicketCandidate],
    same_channel_windows: Mapping[Channel, timedelta] = DEFAULT_SAME_CHANNEL_WINDOWS,
) -> ThreadDecision:
    """Join the ticket the contact's thread references point at (the most specific key wins,
    then the latest contact); only the same customer's tickets are joined, so a forged or
    forwarded reference cannot attach a contact to someone else's ticket. A resolved ticket is
    reopened; a closed one gets a follow-up. Without a reference match: the customer's open
    ticket on the same channel last contacted within the channel's window, if any."""
    order = {key: rank for rank, key in enumerate(lookup_keys(contact))}
    referenced = [
        (min(order[k] for k in c.matched_keys if k in order), c)
        for c in candidates
        if c.customer_id == contact.customer_id and c.matched_keys & order.keys()
    ]
    if referenced:
        _, ticket = min(referenced, key=lambda rc: (rc[0], -rc[1].last_contact_at.timestamp()))
        key = min((k for k in ticket.matched_keys if k in order), key=order.__getitem__)
        if ticket.status in OPEN_STATUSES:
            return ThreadDecision("join", ticket.ticket_id, None, key, f"replies in thread {key}")
        if ticket.status == "resolved":
            return ThreadDecision(
                "reopen",
                ticket.ticket_id,
                None,
                key,
                f"replies in thread {key} of a resolved ticket",
            )
        return ThreadDecision(
            "open_new", None, ticket.ticket_id, key, f"replies in thread {key} of a closed ticket"
        )

    window = same_channel_windows.get(contact.channel)
    if window is not None:
        recent = [
            c
            for c in candidates
            if c.customer_id == contact.customer_id
            and c.channel == contact.channel
            and c.status in OPEN_STATUSES
            and contact.received_at - c.last_contact_at <= window
        ]
        if recent:
            ticket = max(recent, key=lambda c: (c.last_contact_at, c.ticket_id))
            return ThreadDecision(
                "join",
                ticket.ticket_id,
                None,
                None,
                f"same customer's open {contact.channel} ticket, last contact within {window}",
            )
    return ThreadDecision("open_new", None, None, None, "no thread reference or recent ticket")


def _message_id(raw: str) -> str:
    # Message-IDs come with or without their angle brackets, and with folding whitespace.
    return raw.strip().strip("<>").strip()


def _unique(keys: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(keys))
