from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from pathlib import Path

import pytest

from intake.domain.contact_models import EmailContact, derive_customer_hints, parse_contact
from intake.domain.rfc822 import InvalidRawEmail, parse_rfc822

FIXTURES = Path(__file__).parents[2] / "fixtures"
NOW = {"now": datetime(2026, 11, 25, 9, tzinfo=UTC)}


@pytest.fixture
def thread_reply() -> bytes:
    return (FIXTURES / "thread-reply.eml").read_bytes()


def _message(**headers: str) -> EmailMessage:
    message = EmailMessage()
    defaults = {
        "Message-ID": "<m-1@mail.example.com>",
        "From": "Li Wei <li.wei@example.cn>",
        "To": "support@shop.example",
        "Date": "Wed, 25 Nov 2026 10:00:00 +0800",
        "Subject": "积分兑换",
    }
    for name, value in {**defaults, **headers}.items():
        if value:
            message[name] = value
    message.set_content("你好，请问会员积分怎么兑换？")
    return message


def test_thread_reply_script_does_not_survive(thread_reply: bytes) -> None:
    html = parse_rfc822(thread_reply)["email"]["html"]
    assert "<script" not in html
    assert "alert(1)" not in html
    assert "<p>Still no refund. Please call me back at +34 612 345 678.</p>" in html
    assert "<blockquote>We are looking into it.</blockquote>" in html


def test_thread_reply_encoded_headers_are_decoded(thread_reply: bytes) -> None:
    body = parse_rfc822(thread_reply)
    assert body["subject"] == "Re: Refund for order 88231 — still waiting"
    assert body["email"]["from"] == {"name": "Maria López", "address": "maria.lopez@example.com"}
    assert body["email"]["to"] == [{"name": "Support", "address": "support@shop.example"}]


def test_thread_reply_carries_threading_headers(thread_reply: bytes) -> None:
    body = parse_rfc822(thread_reply)
    assert body["external_id"] == body["email"]["message_id"] == "<CAF1c3z@mail.example.com>"
    assert body["email"]["in_reply_to"] == "<reply-1@shop.example>"
    assert body["email"]["references"] == ["<CAF1a9x@mail.example.com>", "<reply-1@shop.example>"]


def test_thread_reply_date_becomes_aware_utc_received_at(thread_reply: bytes) -> None:
    received_at = parse_rfc822(thread_reply)["received_at"]
    assert received_at == datetime(2026, 11, 25, 5, 40, tzinfo=UTC)
    assert received_at.utcoffset().total_seconds() == 0


def test_thread_reply_keeps_plain_text_and_has_no_attachments(thread_reply: bytes) -> None:
    body = parse_rfc822(thread_reply)
    assert body["text"].startswith("Still no refund. Please call me back at +34 612 345 678.")
    assert "> We are looking into it." in body["text"]
    assert body["email"]["attachments"] == []


def test_thread_reply_is_a_valid_email_contact_identifying_the_sender(thread_reply: bytes) -> None:
    contact = parse_contact(parse_rfc822(thread_reply), context=NOW)
    assert isinstance(contact, EmailContact)
    assert contact.email.references == ["<CAF1a9x@mail.example.com>", "<reply-1@shop.example>"]
    hints = derive_customer_hints(contact)
    assert (hints.email, hints.name) == ("maria.lopez@example.com", "Maria López")


def test_chinese_subject_and_body_survive_encoding() -> None:
    body = parse_rfc822(_message().as_bytes())
    assert body["subject"] == "积分兑换"
    assert body["text"].strip() == "你好，请问会员积分怎么兑换？"
    assert body["email"]["html"] is None


def test_gb2312_body_is_decoded() -> None:
    encoded = base64.b64encode("发票开错了，请重新开具。".encode("gb2312")).decode()
    raw = (
        "Message-ID: <inv@corp.example>\r\nFrom: ap@corp.example\r\n"
        "Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n"
        f"Subject: {Header('发票开错了', 'gb2312').encode()}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=gb2312\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
    ).encode("ascii")
    body = parse_rfc822(raw)
    assert body["text"].strip() == "发票开错了，请重新开具。"
    assert body["subject"] == "发票开错了"


def test_attachments_give_metadata_only() -> None:
    message = _message()
    message.add_alternative("<p>你好</p><script>x()</script>", subtype="html")
    pdf = b"%PDF-1.7 " + bytes(1000)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="发票.pdf")
    body = parse_rfc822(message.as_bytes())
    assert body["email"]["attachments"] == [
        {"filename": "发票.pdf", "content_type": "application/pdf", "size_bytes": len(pdf)}
    ]
    assert body["email"]["html"].strip() == "<p>你好</p>"
    contact = parse_contact(body, context=NOW)
    assert isinstance(contact, EmailContact)
    assert contact.email.attachments[0].size_bytes == len(pdf)


def test_attached_message_counts_as_one_attachment() -> None:
    message = _message()
    message.add_attachment(_message(**{"Message-ID": "<inner@x.example>"}))
    attachments = parse_rfc822(message.as_bytes())["email"]["attachments"]
    assert [a["content_type"] for a in attachments] == ["message/rfc822"]
    assert attachments[0]["size_bytes"] > 0


def test_html_only_message_gets_text_from_sanitized_html() -> None:
    message = _message()
    message.set_content("<p>Order <b>88231</b></p><script>alert(1)</script>", subtype="html")
    body = parse_rfc822(message.as_bytes())
    assert body["text"] is None
    contact = parse_contact(body, context=NOW)
    assert contact.text == "Order 88231"


def test_unusable_recipients_are_dropped_not_fatal() -> None:
    body = parse_rfc822(
        _message(Cc="undisclosed-recipients:;, broken@, ok@shop.example").as_bytes()
    )
    assert body["email"]["cc"] == [{"name": None, "address": "ok@shop.example"}]


def test_missing_date_uses_the_fallback() -> None:
    fallback = datetime(2026, 11, 25, 8, tzinfo=UTC)
    body = parse_rfc822(_message(Date="").as_bytes(), fallback_received_at=fallback)
    assert body["received_at"] == fallback


def test_missing_or_garbage_date_without_fallback_is_refused() -> None:
    with pytest.raises(InvalidRawEmail, match="Date"):
        parse_rfc822(_message(Date="").as_bytes())
    with pytest.raises(InvalidRawEmail, match="Date"):
        parse_rfc822(_message(Date="yesterday").as_bytes())


def test_date_with_unknown_zone_is_utc() -> None:
    body = parse_rfc822(_message(Date="Wed, 25 Nov 2026 10:00:00 -0000").as_bytes())
    assert body["received_at"] == datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_message_without_from_is_refused() -> None:
    with pytest.raises(InvalidRawEmail, match="From"):
        parse_rfc822(_message(From="").as_bytes())


def test_message_without_message_id_gets_a_stable_id_derived_from_its_content() -> None:
    raw = _message(**{"Message-ID": ""}).as_bytes()
    body = parse_rfc822(raw)
    assert body["external_id"] == body["email"]["message_id"]
    assert body["external_id"].endswith("@derived.intake.invalid>")
    assert parse_rfc822(raw)["external_id"] == body["external_id"]
    relayed = b"Received: from mx2.example by mx.shop.example; Wed, 25 Nov 2026 10:01:00 +0800\n"
    relayed += raw.replace(b"\r\n", b"\n")  # another hop, other line ends: the same message
    assert parse_rfc822(relayed)["external_id"] == body["external_id"]
    other = _message(**{"Message-ID": "", "Subject": "积分兑换 2"}).as_bytes()
    assert parse_rfc822(other)["external_id"] != body["external_id"]
    assert parse_contact(body, context=NOW).external_id == body["external_id"]


def test_message_id_of_a_forwarded_message_is_not_taken_for_the_forward() -> None:
    forward = _message(**{"Message-ID": ""})
    forward.add_attachment(_message(**{"Message-ID": "<original@x.example>"}))
    body = parse_rfc822(forward.as_bytes())
    assert body["external_id"] != "<original@x.example>"
    assert body["external_id"].endswith("@derived.intake.invalid>")
    assert [a["content_type"] for a in body["email"]["attachments"]] == ["message/rfc822"]


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"\xff\xfe\x00garbage", b"just some text"])
def test_unparseable_bytes_are_refused_with_a_domain_error(raw: bytes) -> None:
    with pytest.raises(InvalidRawEmail):
        parse_rfc822(raw)


def test_invalid_raw_email_is_a_value_error() -> None:
    assert issubclass(InvalidRawEmail, ValueError)
