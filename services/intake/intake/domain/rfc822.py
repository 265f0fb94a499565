"""Turns a raw RFC 5322 message, as email gateways deliver it (message/rfc822), into the body of
an email contact: the same dict a channel integration would POST to /v1/contacts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage, Message
from typing import Any

from intake.domain.normalize import InvalidEmailAddress, normalize_email, sanitize_html

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class InvalidRawEmail(ValueError):
    """The bytes are not an email message intake can take."""


def parse_rfc822(raw: bytes, *, fallback_received_at: datetime | None = None) -> dict[str, Any]:
    """Return the contact body of a raw message; validate it with the API's contact model.

    `received_at` is the Date header; `fallback_received_at` (say, the gateway's delivery
    time) stands in when Date is missing or unreadable. Recipients that are not valid
    addresses are dropped rather than refusing a customer's message over a bad Cc. Attachment
    content is not kept, only its name, type and decoded size.
    """
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise InvalidRawEmail("the message is empty")
    try:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)  # what policy.default builds
        return _contact_body(message, fallback_received_at)
    except InvalidRawEmail:
        raise
    except (MessageError, ValueError, LookupError, TypeError, AttributeError, IndexError) as exc:
        # The stdlib parser is lenient; what still breaks it is a message too mangled to trust.
        raise InvalidRawEmail(f"the message cannot be parsed: {exc}") from exc


def _contact_body(message: EmailMessage, fallback_received_at: datetime | None) -> dict[str, Any]:
    message_id = _first_message_id(message.get("Message-ID"))
    if message_id is None:
        raise InvalidRawEmail("the message has no Message-ID header")
    sender = _mailboxes(message, "From")
    if not sender:
        raise InvalidRawEmail("the message has no From address")
    text, html = _bodies(message)
    subject = message.get("Subject")
    email: dict[str, Any] = {
        "message_id": message_id,
        "from": sender[0],
        "to": _valid_only(_mailboxes(message, "To")),
        "cc": _valid_only(_mailboxes(message, "Cc")),
        "in_reply_to": _first_message_id(message.get("In-Reply-To")),
        "references": _MESSAGE_ID.findall(str(message.get("References", ""))),
        "html": sanitize_html(html) if html is not None else None,
        "attachments": [_attachment(part) for part in _attachment_parts(message)],
    }
    return {
        "channel": "email",
        "external_id": message_id,
        "received_at": _received_at(message, fallback_received_at),
        "subject": str(subject) if subject is not None else None,
        "text": text,
        "email": email,
    }


def _first_message_id(header: object) -> str | None:
    if header is None:
        return None
    value = str(header).strip()
    match = _MESSAGE_ID.search(value)
    if match:
        return match.group()
    return value or None  # some mailers omit the angle brackets


def _mailboxes(message: EmailMessage, name: str) -> list[dict[str, str | None]]:
    header = message.get(name)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    return [
        {"name": address.display_name or None, "address": address.addr_spec}
        for address in addresses
        if address.username and address.domain
    ]


def _valid_only(mailboxes: list[dict[str, str | None]]) -> list[dict[str, str | None]]:
    valid = []
    for mailbox in mailboxes:
        try:
            normalize_email(mailbox["address"] or "")
        except InvalidEmailAddress:
            continue
        valid.append(mailbox)
    return valid


def _received_at(message: EmailMessage, fallback: datetime | None) -> datetime:
    header = message.get("Date")
    sent_at: datetime | None = getattr(header, "datetime", None)
    if sent_at is None:
        if fallback is None:
            raise InvalidRawEmail("the message has no readable Date header")
        return fallback
    if sent_at.tzinfo is None:
        # RFC 5322 "-0000": the time is UTC, the sender's zone unknown.
        return sent_at.replace(tzinfo=UTC)
    return sent_at.astimezone(UTC)


def _bodies(message: EmailMessage) -> tuple[str | None, str | None]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (
        _decoded_text(plain) if plain is not None else None,
        _decoded_text(html) if html is not None else None,
    )


def _decoded_text(part: Message) -> str:
    assert isinstance(part, EmailMessage)
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _attachment_parts(message: EmailMessage) -> list[EmailMessage]:
    """Every leaf part that is not one of the bodies shown as text, inline images included.
    An attached message (message/rfc822) counts as one attachment, not as its parts."""
    bodies = {id(part) for part in (message.get_body(("plain",)), message.get_body(("html",)))}
    found: list[EmailMessage] = []

    def visit(part: EmailMessage) -> None:
        if part.get_content_maintype() == "multipart":
            for child in part.iter_parts():
                assert isinstance(child, EmailMessage)
                visit(child)
        elif id(part) not in bodies:
            found.append(part)

    if message.is_multipart():
        visit(message)
    return found


def _attachment(part: EmailMessage) -> dict[str, Any]:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else payload
        size = len(inner.as_bytes()) if isinstance(inner, Message) else 0
    else:
        decoded = part.get_payload(decode=True)
        size = len(decoded) if isinstance(decoded, bytes) else 0
    return {
        "filename": part.get_filename(),
        "content_type": part.get_content_type(),
        "size_bytes": size,
    }
