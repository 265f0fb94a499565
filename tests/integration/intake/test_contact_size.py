"""The size of what intake stores and publishes is bounded before the 202: a contact whose
contact.received event would exceed INTAKE_MAX_CONTACT_BYTES is a 413 naming the fields at
fault, and leaves no row behind (one such event, larger than Kafka's message limit, used to
stop the outbox relay for good)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from intake.domain.contact_models import parse_contact
from intake.domain.contacts import contact_document, contact_received_event
from intake.settings import IntakeSettings
from tests.conftest import topic
from tests.integration.intake.conftest import Intake, TopicTail

LIMIT = IntakeSettings().max_contact_bytes
TABLES = ("contacts", "customers", "customer_identities", "outbox")


def chinese_html_email(size: int = 990_000) -> bytes:
    """A raw HTML e-mail of Chinese text with an `&` now and then: sanitizing writes each as
    `&amp;`, and each character is 3 bytes of UTF-8; there is no text part, so the text is
    extracted from the HTML too."""
    unit = "客户投诉退款问题请尽快处理&".encode()
    html = b"<html><body><p>" + unit * ((size - 200) // len(unit)) + b"</p></body></html>"
    headers = (
        b"Message-ID: <big-zh-html@mail.example.cn>\r\nFrom: =?utf-8?b?546L6Iqz?= "
        b"<wang.fang@example.cn>\r\nTo: support@shop.example\r\n"
        b"Date: Wed, 25 Nov 2026 10:00:00 +0800\r\nSubject: =?utf-8?b?5oqV6K+J?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return headers + html


def email_contact(external_id: str, html_chars: int) -> dict[str, Any]:
    return {
        "channel": "email",
        "external_id": external_id,
        "received_at": "2026-11-25T02:00:00Z",
        "subject": "发票",
        "text": "请重新开具发票。" * 12_000,  # 96k characters, 288 KB
        "email": {
            "message_id": external_id,
            "from": "Li Wei <li.wei@example.cn>",
            "html": "<p>" + "x" * html_chars + "</p>",
        },
    }


def event_size(body: dict[str, Any]) -> int:
    contact = parse_contact(body, context={"now": datetime(2026, 11, 26, tzinfo=UTC)})
    _, value = contact_received_event(
        contact,
        contact_document(contact),
        contact_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        correlation_id=uuid.uuid4().hex,
    )
    return len(value)


def email_contact_of_event_size(external_id: str, size: int) -> dict[str, Any]:
    body = email_contact(external_id, 1000)
    return email_contact(external_id, 1000 + size - event_size(body))


async def _counts(intake: Intake) -> dict[str, int]:
    return {table: await intake.count(table) for table in TABLES}


async def test_raw_chinese_html_email_too_large_to_publish_is_413_and_stores_nothing(
    intake: Intake,
) -> None:
    key = await intake.new_key()
    raw = chinese_html_email()
    assert 980_000 < len(raw) < 1_000_000
    response = await intake.client.post(
        "/v1/contacts",
        content=raw,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    fields = [e["field"] for e in problem["errors"]]
    assert fields[0] == "body.email.html", problem
    assert {e["type"] for e in problem["errors"]} == {"contact_too_large"}
    assert str(LIMIT) in problem["detail"]
    assert await _counts(intake) == dict.fromkeys(TABLES, 0)


async def test_json_contact_just_under_the_limit_is_accepted_and_just_over_is_413(
    intake: Intake, kafka_bootstrap: str
) -> None:
    key = await intake.new_key()
    under = email_contact_of_event_size("<under@mail.example.cn>", LIMIT - 512)
    over = email_contact_of_event_size("<over@mail.example.cn>", LIMIT + 512)

    refused = await intake.post(over, key)
    assert refused.status_code == 413, refused.text
    assert {e["field"] for e in refused.json()["errors"]} == {"body.text", "body.email.html"}
    assert await _counts(intake) == dict.fromkeys(TABLES, 0)

    async with TopicTail(kafka_bootstrap, topic("intake.contacts")) as tail:
        accepted = await intake.post(under, key)
        assert accepted.status_code == 202, accepted.text
        contact_id = accepted.json()["id"].encode()
        records = await tail.wait_for(lambda rs: any(contact_id in r.value for r in rs))
    published = next(r.value for r in records if contact_id in r.value)
    assert LIMIT - 1024 < len(published) <= LIMIT


async def test_batch_item_over_the_limit_is_invalid_and_the_others_are_stored(
    intake: Intake,
) -> None:
    key = await intake.new_key()
    small = email_contact("<small@mail.example.cn>", 10)
    small["text"] = "你好"
    big = email_contact_of_event_size("<big@mail.example.cn>", LIMIT + 10_000)
    response = await intake.client.post(
        "/v1/contacts:batch",
        json={"items": [small, big]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["items"]
    assert first["status"] == "accepted"
    assert second["status"] == "invalid"
    assert {e["field"] for e in second["errors"]} == {"text", "email.html"}
    assert {e["type"] for e in second["errors"]} == {"contact_too_large"}
    assert await intake.count("contacts") == 1
