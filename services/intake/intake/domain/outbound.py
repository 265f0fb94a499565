"""Delivering what the platform sends to customers (message.outbound) and notifications to staff
who asked for them by e-mail (notification.email_requested): which way a message goes (e-mail,
the integration's outbound URL, or refused with a reason), the e-mail and the webhook body
themselves, messaging channels' reply windows, what an attempt's outcome makes of the
message (sent, tried again later, failed), and which delivery reports an integration may make.
"""

from __future__ import annotations

import random
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, Literal

import orjson

from ccshared.webhooks import is_retryable_status, retry_delay

# Reasons a message failed, as the conversation and the UI show them.
REPLY_WINDOW_CLOSED = "reply_window_closed"
NO_CONTACT = "no_contact_to_reply_to"
NO_OUTBOUND_URL = "no_outbound_url"
NO_EMAIL_ADDRESS = "no_customer_email_address"
NO_RECIPIENT_ADDRESS = "no_recipient_address"

NOTIFICATION = "notification"
"""The kind of an outbound message that is a notification to a user (no customer, no thread)."""
MAX_REASON_CHARS = 500

SIGNATURE_HEADER = "X-Intake-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Intake-Attempt"

DeliveryState = Literal["queued", "sent", "delivered", "read", "failed"]
ReportedState = Literal["delivered", "read", "failed"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message to deliver, as stored (the message.outbound payload, or a notification's) with
    its attempts so far. A notification (`kind` NOTIFICATION) goes by e-mail to `to`; it may be
    about no ticket."""

    id: uuid.UUID
    ticket_id: uuid.UUID | None
    channel: str
    kind: str
    text: str
    html: str | None = None
    subject: str | None = None
    language: str | None = None
    attempts: int = 0
    to: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerContact:
    """The customer's contact a message answers: where and how to reach them."""

    id: uuid.UUID
    channel: str
    external_id: str
    received_at: datetime
    subject: str | None = None
    email_address: str | None = None
    email_name: str | None = None
    email_message_id: str | None = None
    email_references: tuple[str, ...] = ()
    channel_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IntegrationOutbound:
    """What an integration registered for outbound messages."""

    url: str | None = None
    signing_secret: str | None = None
    mail_from: str | None = None


@dataclass(frozen=True, slots=True)
class EmailRoute:
    to: str
    to_name: str | None
    mail_from: str
    subject: str
    in_reply_to: str | None
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    url: str
    signing_secret: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


Route = EmailRoute | WebhookRoute | Refused


def reply_window_open(
    channel: str,
    last_inbound_at: datetime | None,
    now: datetime,
    windows: Mapping[str, timedelta],
) -> bool:
    """A messaging channel (chat, social) lets the business answer only within a window after
    the customer's last message; channels without a window (e-mail, phone) are always open."""
    window = windows.get(channel)
    if window is None:
        return True
    return last_inbound_at is not None and now - last_inbound_at <= window


def plan_delivery(
    message: OutboundMessage,
    contact: CustomerContact | None,
    outbound: IntegrationOutbound | None,
    *,
    last_inbound_at: datetime | None,
    default_mail_from: str,
    reply_windows: Mapping[str, timedelta],
    now: datetime,
) -> Route:
    """Which way the message goes. E-mail answers the contact's sender over SMTP, threaded on
    the contact; chat, social and phone go to the integration's outbound URL, chat and social
    only within the channel's reply window (a call-back request has none). A notification goes
    by e-mail to its recipient's address, from the platform's address, threaded on nothing."""
    if message.kind == NOTIFICATION:
        if not message.to:
            return Refused(NO_RECIPIENT_ADDRESS)
        name, address = parseaddr(message.to)
        return EmailRoute(
            to=address or message.to,
            to_name=name or None,
            mail_from=default_mail_from,
            subject=" ".join((message.subject or "Notification").split()),
            in_reply_to=None,
            references=(),
        )
    if contact is None:
        return Refused(NO_CONTACT)
    if message.channel == "email":
        if not contact.email_address:
            return Refused(NO_EMAIL_ADDRESS)
        references = tuple(contact.email_references)
        if contact.email_message_id and contact.email_message_id not in references:
            references += (contact.email_message_id,)
        return EmailRoute(
            to=contact.email_address,
            to_name=contact.email_name,
            mail_from=(outbound.mail_from if outbound and outbound.mail_from else None)
            or default_mail_from,
            subject=reply_subject(message.subject or contact.subject),
            in_reply_to=contact.email_message_id,
            references=references,
        )
    if message.kind != "callback_request" and not reply_window_open(
        message.channel, last_inbound_at, now, reply_windows
    ):
        return Refused(REPLY_WINDOW_CLOSED)
    if outbound is None or not outbound.url or not outbound.signing_secret:
        return Refused(NO_OUTBOUND_URL)
    return WebhookRoute(outbound.url, outbound.signing_secret)


_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|回复|答复)\s*[:：]\s*", re.IGNORECASE)


def new_signing_secret() -> str:
    """The secret an integration checks outbound messages' signatures with."""
    return "whsec_" + secrets.token_urlsafe(32)


def reply_subject(subject: str | None) -> str:
    """`Re: <the customer's subject>`, without piling up `Re: Re:`."""
    subject = " ".join((subject or "").split())
    while (match := _REPLY_PREFIX.match(subject)) is not None:
        subject = subject[match.end() :]
    return f"Re: {subject}" if subject else "Re: your message"


def new_email_message_id(message_id: uuid.UUID, mail_from: str) -> str:
    """The Message-ID of the e-mail carrying outbound message `message_id`: the same for every
    attempt, so a receiver sees a retry as the same message."""
    domain = mail_from.rpartition("@")[2].strip("<> ") or "contactcenter.invalid"
    return f"<{message_id}@{domain}>"


def build_email(
    route: EmailRoute,
    message: OutboundMessage,
    *,
    email_message_id: str,
    at: datetime,
) -> bytes:
    """The MIME message as sent (CRLF lines): UTF-8 text and, when the reply has one, an HTML
    alternative, threaded with In-Reply-To/References on the customer's last message. Built
    with the `email.mime` classes and the compat32 policy: the default policy's header objects
    cost about three times as much per message on the delivery path."""
    text = MIMEText(message.text, "plain", "utf-8")
    mail: Message = text
    if message.html:
        mail = MIMEMultipart("alternative")
        mail.attach(text)
        mail.attach(MIMEText(message.html, "html", "utf-8"))
    mail["Subject"] = _encoded("Subject", route.subject)
    mail["From"] = _mailbox(*parseaddr(route.mail_from))
    mail["To"] = _mailbox(route.to_name or "", route.to)
    mail["Date"] = format_datetime(at)
    mail["Message-ID"] = email_message_id
    if route.in_reply_to:
        mail["In-Reply-To"] = route.in_reply_to
    if route.references:
        mail["References"] = " ".join(route.references)
    if message.language:
        mail["Content-Language"] = message.language
    return mail.as_bytes(policy=_SMTP)


_SMTP = compat32.clone(linesep="\r\n")


def _encoded(name: str, value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8", header_name=name).encode()


def _mailbox(name: str, address: str) -> str:
    return formataddr((name, address), charset="utf-8") if name else address


def webhook_body(
    message: OutboundMessage, contact: CustomerContact, *, attempt: int, created_at: str
) -> bytes:
    """What an integration receives: the message, who it is for on the channel (the contact's
    channel part: chat session, social post, caller) and the idempotency id to dedupe by."""
    return orjson.dumps(
        {
            "message_id": str(message.id),
            "idempotency_key": str(message.id),
            "attempt": attempt,
            "kind": message.kind,
            "ticket_id": None if message.ticket_id is None else str(message.ticket_id),
            "channel": message.channel,
            "text": message.text,
            "html": message.html,
            "language": message.language,
            "in_reply_to": {
                "contact_id": str(contact.id),
                "external_id": contact.external_id,
                contact.channel: dict(contact.channel_data),
            },
            "created_at": created_at,
        }
    )


# --- what an attempt's outcome makes of the message ------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class TemporaryFailure:
    """May pass: a timeout, a refused connection, a 5xx answer, a 4xx SMTP reply."""

    reason: str


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """Will not pass by trying again: a 4xx answer, a 5xx SMTP reply, a refused route."""

    reason: str


Outcome = Sent | TemporaryFailure | PermanentFailure


def http_outcome(status: int) -> Outcome:
    if 200 <= status < 300:
        return Sent()
    if is_retryable_status(status):
        return TemporaryFailure(f"http {status}")
    return PermanentFailure(f"http {status}")


def smtp_outcome(code: int, message: str) -> Outcome:
    """An SMTP reply code that refused the message: 4xx is temporary, 5xx permanent."""
    reason = truncate_reason(f"smtp {code} {' '.join(message.split())}".strip())
    return TemporaryFailure(reason) if 400 <= code < 500 else PermanentFailure(reason)


def truncate_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base: timedelta = timedelta(seconds=2)
    cap: timedelta = timedelta(minutes=10)
    jitter: float = 0.2


@dataclass(frozen=True, slots=True)
class Step:
    """The message after an attempt: its state, when to try next (queued), and why (failed)."""

    state: DeliveryState
    next_attempt_at: datetime | None
    reason: str | None
    provider_message_id: str | None = None


def after_attempt(
    outcome: Outcome,
    attempt: int,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random | None = None,
) -> Step:
    """`attempt` (1-based) ended with `outcome`: sent; queued again after an exponential
    back-off with jitter; or failed with the reason (a permanent failure, or the last retry)."""
    if isinstance(outcome, Sent):
        return Step("sent", None, None, outcome.provider_message_id)
    if isinstance(outcome, PermanentFailure) or attempt >= policy.max_attempts:
        return Step("failed", None, truncate_reason(outcome.reason))
    delay = retry_delay(attempt, base=policy.base, cap=policy.cap, jitter=policy.jitter, rng=rng)
    return Step("queued", now + delay, truncate_reason(outcome.reason))


# --- delivery reports from integrations -------------------------------------------------------

_PROGRESS = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


class ReportConflict(Exception):
    """A report that contradicts what is known (delivered after failed, failed after read)."""


def apply_report(current: DeliveryState, reported: ReportedState) -> DeliveryState | None:
    """The state after an integration's report, or None when nothing changes (the same report
    again, or `delivered` after `read`: reports may arrive out of order). Raises
    ReportConflict for a report that contradicts a final state."""
    if current == reported:
        return None
    if current == "failed":
        raise ReportConflict(f"the message already failed; it cannot be {reported}")
    if reported == "failed":
        if current in ("delivered", "read"):
            raise ReportConflict(f"the message was already {current}")
        return "failed"
    return reported if _PROGRESS[reported] > _PROGRESS[current] else None
