"""E-mail replies: a message.outbound on the e-mail channel reaches a real SMTP server
(deploy/local/mailbox.py) as a threaded UTF-8 MIME reply, and the customer's answer, posted raw
to intake, carries thread refs that name the reply (and the ticket's first message)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from ccshared.events.catalog import INTAKE_CONTACTS, INTAKE_DELIVERIES
from ccshared.events.payloads import MessageOutbound
from deploy.local.mailbox import Mailbox
from router.domain.threading import ContactThread, email_key, lookup_keys
from tests.conftest import topic
from tests.helpers import wait_until
from tests.integration.intake.conftest import Intake, TopicTail, publish_outbound

RAW_FIRST = """\
From: =?utf-8?b?546L6Iqz?= <wang.fang@example.net>
To: support@example.com
Subject: =?utf-8?b?6K6i5Y2VIDEyMyDmvI/msLQ=?=
Message-ID: <first-{n}@mail.example.net>
References: <older-{n}@mail.example.net>
Date: Thu, 03 Dec 2026 09:00:00 +0000
Content-Type: text/plain; charset=utf-8

我上周买的洗衣机一直漏水。
"""


async def _post_raw(intake: Intake, key: str, raw: str) -> dict[str, Any]:
    response = await intake.client.post(
        "/v1/contacts",
        content=raw.replace("\n", "\r\n").encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def _reply(contact: dict[str, Any], **fields: Any) -> MessageOutbound:
    values: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "ticket_id": uuid.uuid4(),
        "customer_id": uuid.UUID(contact["customer_id"]),
        "channel": "email",
        "author": "agent:amy",
        "text": "您好，王女士：维修师傅明天上午上门。\nHello, a technician comes tomorrow.",
        "html": "<p>您好，王女士：维修师傅明天上午上门。</p>",
        "reply_to_contact_id": uuid.UUID(contact["id"]),
        "created_at": datetime.now(UTC),
    }
    return MessageOutbound(**(values | fields))


def _deliveries(records: list[Any], message_id: uuid.UUID) -> list[dict[str, Any]]:
    events = [orjson.loads(r.value) for r in records]
    return [e["payload"] for e in events if e["payload"]["message_id"] == str(message_id)]


def _contact_events(records: list[Any], contact_id: str) -> list[dict[str, Any]]:
    payloads = [orjson.loads(r.value)["payload"] for r in records]
    return [p for p in payloads if p["contact_id"] == contact_id]


async def test_email_reply_reaches_the_smtp_server_threaded_and_the_customers_answer_threads_back(
    intake_factory: Callable[..., Awaitable[Intake]], mailbox: Mailbox, kafka_bootstrap: str
) -> None:
    intake = await intake_factory(
        smtp_port=mailbox.address[1], mail_from="Support <support@example.com>"
    )
    key = await intake.new_key(["email"])
    n = uuid.uuid4().hex[:8]
    contact = await _post_raw(intake, key, RAW_FIRST.format(n=n))
    reply = _reply(contact)

    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        await publish_outbound(kafka_bootstrap, reply, times=2)  # redelivered: sent once
        records = await deliveries.wait_for(lambda r: bool(_deliveries(r, reply.message_id)))
    [sent] = _deliveries(records, reply.message_id)
    assert sent["state"] == "sent"
    assert sent["attempt"] == 1
    assert sent["ticket_id"] == str(reply.ticket_id)

    [mail] = mailbox.messages()
    assert mail["Message-ID"] == sent["provider_message_id"]
    assert mail["Message-ID"].endswith("@example.com>")
    assert mail["Subject"] == "Re: 订单 123 漏水"
    assert mail["To"].addresses[0].addr_spec == "wang.fang@example.net"
    assert mail["From"].addresses[0].addr_spec == "support@example.com"
    assert mail["In-Reply-To"] == f"<first-{n}@mail.example.net>"
    assert mail["References"].split() == [
        f"<older-{n}@mail.example.net>",
        f"<first-{n}@mail.example.net>",
    ]
    assert mail["X-Mailbox-To"] == "wang.fang@example.net"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content_charset() == "utf-8"
    assert "维修师傅明天上午上门" in plain.get_content()
    assert "<p>您好" in html.get_content()
    row = await intake.db.fetchrow(
        "SELECT state, attempts, provider_message_id, target FROM outbound_messages"
    )
    assert dict(row) == {
        "state": "sent",
        "attempts": 1,
        "provider_message_id": mail["Message-ID"],
        "target": "wang.fang@example.net",
    }

    # The customer answers the reply: intake publishes it with thread refs naming the reply
    # and the first message, which is what the router threads onto the same ticket by.
    answer = (
        RAW_FIRST.format(n=n)
        .replace(f"Message-ID: <first-{n}@mail.example.net>", f"Message-ID: <answer-{n}@x>")
        .replace(
            f"References: <older-{n}@mail.example.net>",
            f"In-Reply-To: {mail['Message-ID']}\nReferences: {mail['References']} "
            f"{mail['Message-ID']}",
        )
    )
    async with TopicTail(kafka_bootstrap, topic(INTAKE_CONTACTS)) as contacts:
        posted = await _post_raw(intake, key, answer)
        records = await contacts.wait_for(lambda rs: bool(_contact_events(rs, posted["id"])))
    [received] = _contact_events(records, posted["id"])
    assert received["customer_id"] == contact["customer_id"]
    assert received["thread"]["email_in_reply_to"] == mail["Message-ID"]
    assert received["thread"]["email_references"][-1] == mail["Message-ID"]
    assert f"<first-{n}@mail.example.net>" in received["thread"]["email_references"]
    # What the router looks the answer's ticket up by (its own threading rules): the reply's
    # Message-ID first (the key the router stores for a sent reply), then the ticket's first
    # message, whose key the ticket has had since it opened.
    keys = lookup_keys(
        ContactThread(
            channel="email",
            customer_id=received["customer_id"],
            received_at=datetime.now(UTC),
            email_message_id=received["thread"]["email_message_id"],
            email_in_reply_to=received["thread"]["email_in_reply_to"],
            email_references=tuple(received["thread"]["email_references"]),
        )
    )
    assert keys[0] == email_key(mail["Message-ID"])
    assert email_key(f"<first-{n}@mail.example.net>") in keys


async def test_smtp_4xx_is_retried_and_the_retry_keeps_the_message_id(
    intake_factory: Callable[..., Awaitable[Intake]], tmp_path: Any, kafka_bootstrap: str
) -> None:
    from tests.integration.intake.conftest import free_port

    refusals = ["451 4.3.0 try again later"]
    box = Mailbox(
        tmp_path / "mail",
        port=free_port(),
        refuse=lambda _: refusals.pop() if refusals else None,
    ).start()
    try:
        intake = await intake_factory(
            smtp_port=box.address[1], delivery_retry_base_s=0.05, delivery_poll_interval_s=0.05
        )
        key = await intake.new_key(["email"])
        contact = await _post_raw(intake, key, RAW_FIRST.format(n=uuid.uuid4().hex[:8]))
        reply = _reply(contact)
        await publish_outbound(kafka_bootstrap, reply)

        async def sent() -> Any:
            return await intake.db.fetchrow(
                "SELECT attempts, reason FROM outbound_messages WHERE state = 'sent'"
            )

        row = await wait_until(sent, timeout=30)
        assert row["attempts"] == 2
        assert row["reason"] is None
        [mail] = box.messages()
        assert mail["Message-ID"] == f"<{reply.message_id}@contactcenter.localhost>"
    finally:
        box.stop()


async def test_smtp_5xx_fails_at_once_with_the_reason_and_announces_it(
    intake_factory: Callable[..., Awaitable[Intake]], tmp_path: Any, kafka_bootstrap: str
) -> None:
    from tests.integration.intake.conftest import free_port

    box = Mailbox(
        tmp_path / "mail", port=free_port(), refuse=lambda _: "550 5.1.1 no such mailbox"
    ).start()
    try:
        intake = await intake_factory(smtp_port=box.address[1], delivery_retry_base_s=0.05)
        key = await intake.new_key(["email"])
        contact = await _post_raw(intake, key, RAW_FIRST.format(n=uuid.uuid4().hex[:8]))
        reply = _reply(contact)
        async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
            await publish_outbound(kafka_bootstrap, reply)
            records = await deliveries.wait_for(lambda r: bool(_deliveries(r, reply.message_id)))
        [failed] = _deliveries(records, reply.message_id)
        assert failed["state"] == "failed"
        assert failed["reason"].startswith("smtp 550 5.1.1 no such mailbox")
        row = await intake.db.fetchrow("SELECT state, attempts, reason FROM outbound_messages")
        assert (row["state"], row["attempts"]) == ("failed", 1)
        assert box.messages() == []
    finally:
        box.stop()


async def test_unreachable_smtp_server_is_retried_then_failed_after_the_last_attempt(
    intake_factory: Callable[..., Awaitable[Intake]], kafka_bootstrap: str
) -> None:
    from tests.integration.intake.conftest import free_port

    intake = await intake_factory(
        smtp_port=free_port(),  # nothing listens there
        delivery_max_attempts=3,
        delivery_retry_base_s=0.05,
        delivery_poll_interval_s=0.05,
    )
    key = await intake.new_key(["email"])
    contact = await _post_raw(intake, key, RAW_FIRST.format(n=uuid.uuid4().hex[:8]))
    reply = _reply(contact)
    async with TopicTail(kafka_bootstrap, topic(INTAKE_DELIVERIES)) as deliveries:
        await publish_outbound(kafka_bootstrap, reply)
        records = await deliveries.wait_for(lambda r: bool(_deliveries(r, reply.message_id)))
    [failed] = _deliveries(records, reply.message_id)
    assert failed["state"] == "failed"
    assert failed["attempt"] == 3
    assert failed["reason"].startswith("smtp ")
    row = await intake.db.fetchrow("SELECT state, attempts FROM outbound_messages")
    assert (row["state"], row["attempts"]) == ("failed", 3)
