"""An e-mail conversation round trip through the real services, each with its database, on the
real broker, with a real SMTP server: the customer's e-mail posted to intake opens a ticket in
the router; the agent's reply (Chinese and English) goes router → intake → the mailbox, threaded
on the customer's message; the conversation shows it `sent`; the customer's answer, naming only
the reply (In-Reply-To), joins the same ticket even after the agent resolved it. And a
supervisor who opted in gets an escalation's notification in the mailbox, router → intake; a chat
or social reply (within its reply window) reaches the integration's receiver signed, a retry
with the same idempotency key; `make
chaos`'s agents reply through the router's API and their replies reconcile."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from pydantic import SecretStr

from bench.chaos import (
    Agents,
    accepted_replies,
    mailbox_copies,
    make_contact,
    reconcile_replies,
)
from ccshared.db import asyncpg_dsn
from ccshared.events import new_event
from ccshared.events.payloads import SlaEscalated
from ccshared.kafka import ensure_topics
from ccshared.webhooks import verify_signature
from deploy.local.mailbox import Mailbox
from router.app import create_app
from router.consumers import CONSUMERS
from router.consumers.sla import apply_escalations
from router.settings import RouterSettings
from tests.conftest import TOPIC_PREFIX, groups_at_end, scratch_database
from tests.helpers import as_agent, as_supervisor, wait_until
from tests.integration.feedback.conftest import WebhookReceiver
from tests.integration.feedback.conftest import receiver as receiver  # fixture
from tests.integration.intake.conftest import Intake
from tests.integration.intake.conftest import intake_factory as intake_factory  # fixture
from tests.integration.intake.conftest import mailbox as mailbox  # fixture
from tests.integration.router.conftest import Router, contact

FIRST = """\
From: =?utf-8?b?546L6Iqz?= <wang.fang+{n}@example.net>
To: support@example.com
Subject: =?utf-8?b?6K6i5Y2VIDEyMyDmvI/msLQ=?=
Message-ID: <first-{n}@mail.example.net>
Date: Thu, 03 Dec 2026 09:00:00 +0000
Content-Type: text/plain; charset=utf-8

我上周买的洗衣机一直漏水，请尽快处理。
"""

ANSWER = """\
From: =?utf-8?b?546L6Iqz?= <wang.fang+{n}@example.net>
To: support@example.com
Subject: Re: =?utf-8?b?6K6i5Y2VIDEyMyDmvI/msLQ=?=
Message-ID: <answer-{n}@mail.example.net>
In-Reply-To: {reply_id}
Date: Thu, 03 Dec 2026 10:00:00 +0000
Content-Type: text/plain; charset=utf-8

师傅没有来。The technician did not come.
"""

REPLY = "您好，王女士：维修师傅明天上午上门。\nHello, a technician comes tomorrow morning."


async def _post_raw(intake: Intake, key: str, raw: str) -> dict[str, Any]:
    response = await intake.client.post(
        "/v1/contacts",
        content=raw.replace("\n", "\r\n").encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


@asynccontextmanager
async def running_router(kafka_bootstrap: str, **overrides: Any) -> AsyncIterator[Router]:
    """The router with a database of its own, every one of its consumer groups starting at the
    end of its topics: it sees only what the test publishes, never (say) the follow-ups earlier
    feedback tests left on the suite's feedback topic."""
    suffix = f".test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
    await groups_at_end(kafka_bootstrap, "router", suffix, CONSUMERS)
    async with scratch_database() as router_db:
        app = create_app(
            RouterSettings(
                database_url=SecretStr(router_db),
                kafka_bootstrap=kafka_bootstrap,
                log_json=False,
                consumer_group_suffix=suffix,
                outbox_poll_interval_s=0.1,
                **({"assign_in_background": False} | overrides),
            )
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r", headers=as_supervisor()
        )
        try:
            yield Router(app, client)
        finally:
            await client.aclose()
            await lifespan.__aexit__(None, None, None)


async def test_an_email_conversation_round_trips_through_intake_the_router_and_the_mailbox(
    kafka_bootstrap: str,
    intake_factory: Callable[..., Awaitable[Intake]],
    mailbox: Mailbox,
) -> None:
    intake = await intake_factory(  # its own database (the fixture's)
        smtp_port=mailbox.address[1], mail_from="Support <support@example.com>"
    )
    key = await intake.new_key(["email"])
    async with running_router(kafka_bootstrap) as router:
        client = router.client
        await router.agent("amy", status="offline")
        n = uuid.uuid4().hex[:8]

        # The customer writes: intake → intake.contacts → the router opens a ticket.
        first = await _post_raw(intake, key, FIRST.format(n=n))

        async def ticket_of(contact_id: str) -> Any:
            rows = await router.sql(
                "SELECT ticket_id FROM ticket_contacts WHERE contact_id = :c", c=contact_id
            )
            return rows[0].ticket_id if rows else None

        ticket_id = await wait_until(lambda: ticket_of(first["id"]), timeout=60)
        await router.sql(
            "UPDATE tickets SET status = 'in_progress', assignee_agent_id = 'amy', "
            "owner_agent_id = 'amy' WHERE id = :t",
            t=ticket_id,
        )

        # The agent replies: router → message.outbound → intake → SMTP.
        replied = await client.post(
            f"/v1/tickets/{ticket_id}/reply", json={"text": REPLY}, headers=as_agent("amy")
        )
        assert replied.status_code == 200, replied.text

        async def one_mail() -> Any:
            mails = mailbox.messages()
            return mails[0] if mails else None

        mail = await wait_until(one_mail, timeout=60)
        assert mail["To"].addresses[0].addr_spec == f"wang.fang+{n}@example.net"
        assert mail["Subject"] == "Re: 订单 123 漏水"
        assert mail["In-Reply-To"] == f"<first-{n}@mail.example.net>"
        assert mail["References"].split() == [f"<first-{n}@mail.example.net>"]
        reply_id = mail["Message-ID"]
        assert reply_id.startswith("<")
        assert reply_id.endswith("@example.com>")
        plain = mail.get_body(preferencelist=("plain",))
        assert plain is not None
        assert plain.get_content().strip() == REPLY

        # The conversation shows the reply sent (intake.deliveries → the router).
        async def sent_reply() -> Any:
            page = await client.get(f"/v1/tickets/{ticket_id}/messages", headers=as_agent("amy"))
            assert page.status_code == 200, page.text
            replies = [m for m in page.json()["items"] if m["direction"] == "outbound"]
            return replies[0] if replies and replies[0]["delivery_state"] == "sent" else None

        reply = await wait_until(sent_reply, timeout=60)
        assert reply["text"] == REPLY
        assert reply["provider_message_id"] == reply_id
        assert reply["reply_to_contact_id"] == first["id"]
        assert len(mailbox.messages()) == 1

        # The agent resolves it; the customer's answer names only the reply: it reopens
        # the same ticket (no new ticket, no follow-up).
        resolved = await client.post(
            f"/v1/tickets/{ticket_id}/resolve",
            json={"resolution_code": "technician_booked"},
            headers=as_agent("amy"),
        )
        assert resolved.status_code == 200, resolved.text
        answer = await _post_raw(intake, key, ANSWER.format(n=n, reply_id=reply_id))
        assert answer["customer_id"] == first["customer_id"]
        assert await wait_until(lambda: ticket_of(answer["id"]), timeout=60) == ticket_id
        assert (await router.ticket(ticket_id))["status"] == "queued"  # reopened
        # The suite's other tests share the contacts topic: count this customer's tickets.
        mine = await router.sql(
            "SELECT id FROM tickets WHERE customer_id = :c", c=uuid.UUID(first["customer_id"])
        )
        assert len(mine) == 1


async def test_a_supervisor_who_opted_in_gets_an_escalation_in_the_mailbox(
    kafka_bootstrap: str,
    intake_factory: Callable[..., Awaitable[Intake]],
    mailbox: Mailbox,
) -> None:
    await intake_factory(smtp_port=mailbox.address[1], mail_from="Support <support@example.com>")
    async with running_router(kafka_bootstrap) as router:
        queue = {"name": "Escalations", "required_skills": [], "supervisors": ["lin", "mo"]}
        assert (await router.client.put("/v1/queues/escalations", json=queue)).status_code == 200
        opt_in = {"email": "lin@cc.example", "email_opt_in": True}
        put = await router.client.put(
            "/v1/notification-settings", json=opt_in, headers=as_supervisor("lin")
        )
        assert put.status_code == 200, put.text
        ticket_id = await router.receive(contact(uuid.uuid4(), text_="退款还没到 refund missing"))
        escalation = SlaEscalated(
            ticket_id=ticket_id,
            metric="resolution",
            level=1,
            actions=["move_to_escalation_queue", "notify_supervisor"],
            at=datetime.now(UTC),
        )
        handler = apply_escalations(router.runtime)
        async with router.runtime.engine.begin() as conn:
            await handler(conn, new_event(escalation, producer="sla"), escalation)

        async def one_mail() -> Any:
            mails = mailbox.messages()
            return mails[0] if mails else None

        mail = await wait_until(one_mail, timeout=60)
        assert mail["X-Mailbox-To"] == "lin@cc.example"  # mo did not opt in
        assert "Escalation" in mail["Subject"]
        assert ticket_id.hex[:8].upper() in mail["Subject"]
        assert mail["In-Reply-To"] is None
        (notice,) = await router.sql("SELECT id FROM notifications WHERE recipient = 'lin'")
        assert mail["Message-ID"] == f"<{notice.id}@example.com>"


def _messaging_contact(channel: str, thread: str) -> dict[str, Any]:
    """A chat message, or a social post from two hours ago: past intake's one-hour reply window
    for chat, within social's 24 hours (the router's and intake's)."""
    if channel == "chat":
        return {
            "channel": "chat",
            "external_id": f"chat-{thread}",
            "received_at": datetime.now(UTC).isoformat(),
            "customer": {"name": "Li Wei", "email": f"li.{thread}@example.cn"},
            "text": "你好，请问会员积分怎么兑换？",
            "chat": {"session_id": thread},
        }
    return {
        "channel": "social",
        "external_id": f"wb-{thread}",
        "received_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "customer": {"social_handle": f"@lu{thread}"},
        "text": "@某某商城 会员积分怎么兑换？",
        "social": {"platform": "weibo", "post_id": thread, "author": f"@lu{thread}"},
    }


@pytest.mark.parametrize("channel", ["chat", "social"])
async def test_a_messaging_reply_reaches_the_integrations_receiver_signed_and_deduplicable(
    kafka_bootstrap: str,
    intake_factory: Callable[..., Awaitable[Intake]],
    receiver: WebhookReceiver,
    channel: str,
) -> None:
    intake = await intake_factory(
        outbound_allow_hosts="127.0.0.1", delivery_retry_base_s=0.05, delivery_poll_interval_s=0.05
    )
    key = await intake.new_key([channel], name=f"{channel}-integration")
    registered = await intake.client.put(
        "/v1/integration/outbound",
        json={"url": receiver.base_url + "/outbound"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert registered.status_code == 200, registered.text
    secret = registered.json()["signing_secret"]
    receiver.script = {"/outbound": [503]}  # the first attempt's answer is lost: a retry
    async with running_router(kafka_bootstrap) as router:
        await router.agent("amy", status="offline")
        thread = f"s-{uuid.uuid4().hex[:8]}"
        posted = await intake.post(_messaging_contact(channel, thread), key)
        assert posted.status_code == 202, posted.text
        rows = await wait_until(
            lambda: router.sql(
                "SELECT ticket_id FROM ticket_contacts WHERE contact_id = :c", c=posted.json()["id"]
            ),
            timeout=60,
        )
        ticket_id = rows[0].ticket_id
        await router.sql(
            "UPDATE tickets SET status = 'in_progress', assignee_agent_id = 'amy', "
            "owner_agent_id = 'amy' WHERE id = :t",
            t=ticket_id,
        )
        text = "您好！积分可在会员中心兑换。You can redeem points in the member centre."
        replied = await router.client.post(
            f"/v1/tickets/{ticket_id}/reply", json={"text": text}, headers=as_agent("amy")
        )
        assert replied.status_code == 200, replied.text

        async def sent_reply() -> Any:
            page = await router.client.get(f"/v1/tickets/{ticket_id}/messages")
            replies = [m for m in page.json()["items"] if m["direction"] == "outbound"]
            return replies[0] if replies and replies[0]["delivery_state"] == "sent" else None

        reply = await wait_until(sent_reply, timeout=60)
        first, second = receiver.on("/outbound")
        for attempt, request in enumerate((first, second), start=1):
            assert request.headers["idempotency-key"] == reply["id"]
            assert request.headers["x-intake-attempt"] == str(attempt)
            verify_signature(
                request.headers["x-intake-signature"], request.body, secret, int(time.time())
            )
            body = orjson.loads(request.body)
            assert body["message_id"] == reply["id"]
            assert body["ticket_id"] == str(ticket_id)
            assert body["text"] == text
            assert body["channel"] == channel
            if channel == "chat":
                assert body["in_reply_to"]["chat"]["session_id"] == thread
            else:
                assert body["in_reply_to"]["social"]["post_id"] == thread


async def test_chaos_agents_reply_through_the_routers_api_and_their_replies_reconcile(
    kafka_bootstrap: str,
    intake_factory: Callable[..., Awaitable[Intake]],
    mailbox: Mailbox,
) -> None:
    """bench/chaos.py: its agents accept their offers, answer each ticket through
    `POST /v1/tickets/{id}/reply` before resolving it, and the replies the router stored are
    what is reconciled against intake and the mailbox."""
    intake = await intake_factory(smtp_port=mailbox.address[1])
    key = await intake.new_key(["email"])
    async with running_router(kafka_bootstrap, assign_in_background=True) as router:
        skills = {s: 3 for s in ("complaints", "technical", "billing", "vip", "escalations")}
        await router.agent("amy", skills=skills)
        contact_ids = []
        run = uuid.uuid4().hex[:8]
        for n in range(2):
            posted = await intake.post(make_contact(run, n, "email"), key)
            assert posted.status_code == 202, posted.text
            contact_ids.append(uuid.UUID(posted.json()["id"]))
        agents = Agents(router.client, ["amy"], hold_s=0.0, reply_text=REPLY)
        task = asyncio.create_task(agents.run_until_stopped())
        try:
            await wait_until(lambda: _true(agents.resolved == 2), timeout=60)
        finally:
            agents.stop()
            await task
        assert agents.replied == 2
        assert dict(agents.errors) == {}
        url = router.runtime.settings.database_url.get_secret_value()
        router_db = await asyncpg.connect(asyncpg_dsn(url))
        try:
            replied = await accepted_replies(router_db, contact_ids)
            assert len(replied) == 2

            async def settled() -> bool:
                in_router = await router_db.fetchval(
                    "SELECT count(*) FROM ticket_messages WHERE id = ANY($1::uuid[]) "
                    "AND delivery_state = 'sent'",
                    replied,
                )
                return bool(in_router == 2)

            await wait_until(settled, timeout=60)
            async with intake.db.acquire() as conn:
                counts = await reconcile_replies(
                    conn, replied, [], mailbox_copies(mailbox.directory), router_db
                )
        finally:
            await router_db.close()
    assert counts["replies"] == counts["replies_sent"] == counts["replies_received"] == 2
    assert counts["replies_lost"] == counts["replies_unsettled"] == 0
    assert counts["replies_sent_twice"] == 0
    assert counts["replies_settled_in_router"] == 2


async def _true(value: bool) -> bool:
    return value
