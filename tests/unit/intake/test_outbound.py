"""The pure rules of outbound delivery: routes, reply windows, the reply e-mail, outcomes and
retries, delivery reports."""

from __future__ import annotations

import email
import email.policy
import random
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.domain.outbound import (
    NO_CONTACT,
    NO_OUTBOUND_URL,
    NO_RECIPIENT_ADDRESS,
    NOTIFICATION,
    REPLY_WINDOW_CLOSED,
    CustomerContact,
    EmailRoute,
    IntegrationOutbound,
    OutboundMessage,
    PermanentFailure,
    Refused,
    ReportConflict,
    RetryPolicy,
    Sent,
    TemporaryFailure,
    WebhookRoute,
    after_attempt,
    apply_report,
    build_email,
    http_outcome,
    new_email_message_id,
    plan_delivery,
    reply_subject,
    smtp_outcome,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WINDOWS = {"chat": timedelta(hours=1), "social": timedelta(hours=24)}


def _message(channel: str = "email", **fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "id": uuid.UUID(int=1),
        "ticket_id": uuid.UUID(int=2),
        "channel": channel,
        "kind": "reply",
        "text": "您好",
    }
    return OutboundMessage(**(values | fields))  # type: ignore[arg-type]


def _contact(channel: str = "email", **fields: object) -> CustomerContact:
    values: dict[str, object] = {
        "id": uuid.UUID(int=3),
        "channel": channel,
        "external_id": "x-1",
        "received_at": NOW - timedelta(minutes=5),
        "subject": "订单 123",
        "email_address": "wang@example.net",
        "email_message_id": "<first@example.net>",
        "email_references": ("<older@example.net>",),
    }
    return CustomerContact(**(values | fields))  # type: ignore[arg-type]


def _plan(message: OutboundMessage, contact: CustomerContact | None, **kw: object) -> object:
    options: dict[str, object] = {
        "last_inbound_at": NOW - timedelta(minutes=5),
        "default_mail_from": "Support <support@example.com>",
        "reply_windows": WINDOWS,
        "now": NOW,
    }
    outbound = kw.pop("outbound", IntegrationOutbound("https://hooks.example/x", "whsec_1"))
    return plan_delivery(message, contact, outbound, **(options | kw))  # type: ignore[arg-type]


def test_email_reply_is_threaded_on_the_customers_message_after_its_references() -> None:
    route = _plan(_message(), _contact(), outbound=None)
    assert route == EmailRoute(
        to="wang@example.net",
        to_name=None,
        mail_from="Support <support@example.com>",
        subject="Re: 订单 123",
        in_reply_to="<first@example.net>",
        references=("<older@example.net>", "<first@example.net>"),
    )


def test_email_integrations_own_from_address_wins_over_the_service_default() -> None:
    route = _plan(_message(), _contact(), outbound=IntegrationOutbound(mail_from="a@shop.example"))
    assert isinstance(route, EmailRoute)
    assert route.mail_from == "a@shop.example"


def test_chat_within_its_window_goes_to_the_integrations_url() -> None:
    route = _plan(_message("chat"), _contact("chat"))
    assert route == WebhookRoute("https://hooks.example/x", "whsec_1")


@pytest.mark.parametrize(
    ("channel", "age"), [("chat", timedelta(hours=2)), ("social", timedelta(hours=25))]
)
def test_messaging_reply_outside_the_window_is_refused(channel: str, age: timedelta) -> None:
    route = _plan(_message(channel), _contact(channel), last_inbound_at=NOW - age)
    assert route == Refused(REPLY_WINDOW_CLOSED)


def test_a_call_back_request_has_no_reply_window() -> None:
    route = _plan(
        _message("social", kind="callback_request"),
        _contact("social"),
        last_inbound_at=NOW - timedelta(days=30),
    )
    assert isinstance(route, WebhookRoute)


def test_without_a_contact_or_an_outbound_url_the_message_is_refused() -> None:
    assert _plan(_message("chat"), None) == Refused(NO_CONTACT)
    assert _plan(_message("chat"), _contact("chat"), outbound=None) == Refused(NO_OUTBOUND_URL)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("订单 123", "Re: 订单 123"),
        ("Re: RE: re:  Order  123", "Re: Order 123"),
        ("回复：订单", "Re: 订单"),
        (None, "Re: your message"),
    ],
)
def test_reply_subject_has_one_re_prefix(subject: str | None, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_reply_email_is_utf8_text_and_html_with_threading_headers() -> None:
    route = _plan(_message(), _contact(email_name="王芳"), outbound=None)
    assert isinstance(route, EmailRoute)
    message = _message(html="<p>您好</p>", language="zh")
    mid = new_email_message_id(message.id, route.mail_from)
    sent = build_email(route, message, email_message_id=mid, at=NOW)
    assert b"\r\n" in sent
    assert b"\n" not in sent.replace(b"\r\n", b"")
    mail = email.message_from_bytes(sent, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert mid == f"<{message.id}@example.com>"
    assert mail["Message-ID"] == mid
    assert mail["Subject"] == "Re: 订单 123"
    assert mail["To"] == "王芳 <wang@example.net>"
    assert mail["From"] == "Support <support@example.com>"
    assert mail["In-Reply-To"] == "<first@example.net>"
    assert mail["References"] == "<older@example.net> <first@example.net>"
    assert mail["Content-Language"] == "zh"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_charset() for p in mail.iter_parts()] == ["utf-8", "utf-8"]
    assert [p.get_content() for p in mail.iter_parts()] == ["您好", "<p>您好</p>"]


def test_a_notification_goes_by_email_to_its_recipient_unthreaded_from_the_platform() -> None:
    notice = _message(
        kind=NOTIFICATION,
        ticket_id=None,
        to="lin@cc.example",
        subject="升级：工单 0A1B2C3D  needs you",
        text="Ticket 0A1B2C3D escalated (resolution, level 1).",
    )
    # No contact and no integration: neither is needed, neither is used.
    route = _plan(notice, None, outbound=IntegrationOutbound("https://x", "s", "Other <o@x.y>"))
    assert route == EmailRoute(
        to="lin@cc.example",
        to_name=None,
        mail_from="Support <support@example.com>",
        subject="升级：工单 0A1B2C3D needs you",
        in_reply_to=None,
        references=(),
    )
    mail = email.message_from_bytes(
        build_email(route, notice, email_message_id="<n@example.com>", at=NOW),
        policy=email.policy.default,
    )
    assert mail["Subject"] == "升级：工单 0A1B2C3D needs you"
    assert mail["To"] == "lin@cc.example"
    assert mail["In-Reply-To"] is None
    assert mail["References"] is None
    assert _plan(_message(kind=NOTIFICATION, to=None), None) == Refused(NO_RECIPIENT_ADDRESS)


def test_a_reply_without_html_is_a_single_text_part() -> None:
    route = _plan(_message(), _contact(), outbound=None)
    assert isinstance(route, EmailRoute)
    sent = build_email(route, _message(text="Hello"), email_message_id="<1@x>", at=NOW)
    mail = email.message_from_bytes(sent, policy=email.policy.default)
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, Sent), (204, Sent), (404, PermanentFailure), (400, PermanentFailure),
     (408, TemporaryFailure), (429, TemporaryFailure), (500, TemporaryFailure),
     (503, TemporaryFailure)],
)  # fmt: skip
def test_http_status_outcomes(status: int, kind: type) -> None:
    assert isinstance(http_outcome(status), kind)


def test_smtp_4xx_is_temporary_and_5xx_permanent() -> None:
    assert smtp_outcome(451, "try later") == TemporaryFailure("smtp 451 try later")
    assert smtp_outcome(550, "no  such\n user") == PermanentFailure("smtp 550 no such user")


def test_sent_failed_and_retried_steps() -> None:
    policy = RetryPolicy(max_attempts=3, base=timedelta(seconds=2), jitter=0)
    assert after_attempt(Sent("id"), 1, policy, NOW).state == "sent"
    retry = after_attempt(TemporaryFailure("timeout"), 2, policy, NOW)
    assert (retry.state, retry.next_attempt_at, retry.reason) == (
        "queued",
        NOW + timedelta(seconds=4),
        "timeout",
    )
    last = after_attempt(TemporaryFailure("timeout"), 3, policy, NOW)
    assert (last.state, last.reason) == ("failed", "timeout")
    assert after_attempt(PermanentFailure("http 404"), 1, policy, NOW).state == "failed"


@given(attempt=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_back_off_grows_within_its_cap_and_jitter(attempt: int, seed: int) -> None:
    policy = RetryPolicy(max_attempts=50, base=timedelta(seconds=2), cap=timedelta(minutes=10))
    step = after_attempt(TemporaryFailure("x"), attempt, policy, NOW, random.Random(seed))
    assert step.next_attempt_at is not None
    wait = step.next_attempt_at - NOW
    plain = min(timedelta(seconds=2) * 2 ** (attempt - 1), timedelta(minutes=10))
    assert plain <= wait <= plain * (1 + policy.jitter)


def test_reports_move_forward_only_and_contradictions_are_refused() -> None:
    assert apply_report("sent", "delivered") == "delivered"
    assert apply_report("delivered", "read") == "read"
    assert apply_report("sent", "read") == "read"
    assert apply_report("read", "delivered") is None  # out of order: no change
    assert apply_report("delivered", "delivered") is None
    assert apply_report("sent", "failed") == "failed"
    assert apply_report("queued", "delivered") == "delivered"
    with pytest.raises(ReportConflict):
        apply_report("failed", "delivered")
    with pytest.raises(ReportConflict):
        apply_report("read", "failed")


def test_a_long_chinese_subject_and_names_survive_folding() -> None:
    subject = "Re: " + "洗衣机漏水的投诉处理进度" * 12
    route = EmailRoute("c@example.net", "王芳" * 20, "客服中心 <s@shop.example>", subject, None, ())
    sent = build_email(route, _message(), email_message_id="<1@x>", at=NOW)
    assert all(len(line) <= 998 for line in sent.split(b"\r\n"))
    mail = email.message_from_bytes(sent, policy=email.policy.default)
    assert mail["Subject"] == subject
    assert mail["To"].addresses[0].display_name == "王芳" * 20
    assert mail["From"] == "客服中心 <s@shop.example>"
