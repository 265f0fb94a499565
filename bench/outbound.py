"""Outbound delivery (`python -m bench outbound`): intake delivering message.outbound events on
all four channels to a local SMTP server (deploy/local/mailbox.py) and a local webhook receiver
(bench/receiver_app.py), each in a process of its own.

1. Steady: message.outbound events published to Kafka at `RATE`/s for the run's duration
   (default 20 s), a quarter per channel (e-mail, chat, social, phone call-back requests), each
   answering one of 200 contacts intake accepted before; event → sent is the time from the
   event's publication to intake recording it `sent` (the row's commit time, same clock).
2. Flat out: `FLAT` events published at once; messages/s from the first publication to the
   last `sent`.
3. Ceiling, right after each flat-out run: as many messages built the same way (intake's own
   MIME and webhook body code) and fed directly to the same SMTP server and receiver with
   intake's own senders and concurrency, no Kafka, no PostgreSQL. `ROUNDS` rounds of 2 and 3;
   the round with the median ratio is reported, every round is in the results.

Afterwards, each message id must have reached its receiver exactly once (the SMTP server by
Message-ID, the receiver by Idempotency-Key). Results in bench/results/outbound.json.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.harness import (
    KAFKA,
    ROOT,
    create_bench_key,
    database_url,
    recreate_database,
    socket_database_url,
    start_groups_at_end,
    start_uvicorn,
    topic,
    write_result,
)
from ccshared.events import new_event
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.events.payloads import MessageOutbound
from ccshared.kafka import make_producer

DB = "bench_outbound"
INTAKE_PORT = 18151
RECEIVER_PORT = 18152
MAIL_PORT = 18153
RATE = 100
STEADY_S = 20
FLAT = 1_000
ROUNDS = 3
CONTACTS_PER_CHANNEL = 50
CHANNELS = ("email", "chat", "social", "phone")
TARGET_P99_MS = 500.0
TARGET_SHARE = 0.5
CONCURRENCY = 32


def _contact(channel: str, n: int, run: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    body: dict[str, Any] = {
        "channel": channel,
        "external_id": f"{run}-{channel}-{n}",
        "received_at": now,
        "text": "你好，我的订单还没到。",
        "customer": {"name": f"客户 {n}", "email": f"c{n}.{run}@example.net"},
        "subject": f"订单 {n} 物流",
    }
    if channel == "email":
        body["email"] = {
            "message_id": f"<{run}-{n}@example.net>",
            "from": f"c{n}.{run}@example.net",
        }
    elif channel == "chat":
        body["chat"] = {"session_id": f"s-{run}-{n}"}
    elif channel == "social":
        body["social"] = {"platform": "weibo", "post_id": f"{run}{n}"}
    else:
        body["phone"] = {
            "caller": f"+8613800{n:06d}",
            "call_id": f"{run}-{n}",
            "direction": "inbound",
        }
        body["customer"]["phone"] = body["phone"]["caller"]
    return body


def _message(contact: dict[str, Any]) -> MessageOutbound:
    phone = contact["channel"] == "phone"
    return MessageOutbound(
        message_id=uuid.uuid4(),
        ticket_id=uuid.uuid5(uuid.NAMESPACE_URL, contact["id"]),
        customer_id=uuid.UUID(contact["customer_id"]),
        channel=contact["channel"],
        kind="callback_request" if phone else "reply",
        author="agent:bench",
        text="您好！您的订单已发出，预计明天送达。Your order ships today.",
        html="<p>您好！您的订单已发出，预计明天送达。</p>",
        reply_to_contact_id=uuid.UUID(contact["id"]),
        created_at=datetime.now(UTC),
    )


async def _setup(client: httpx.AsyncClient, key: str, run: str) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {key}"}
    response = await client.put(
        "/v1/integration/outbound",
        json={
            "url": f"http://127.0.0.1:{RECEIVER_PORT}/hook",
            "mail_from": "Bench <bench@cc.test>",
        },
        headers=auth,
    )
    response.raise_for_status()
    contacts = []
    for channel in CHANNELS:
        for n in range(CONTACTS_PER_CHANNEL):
            posted = await client.post("/v1/contacts", json=_contact(channel, n, run), headers=auth)
            posted.raise_for_status()
            contacts.append(posted.json() | {"channel": channel})
    return contacts


async def _publish(
    producer: Any, messages: list[MessageOutbound], rate: float | None
) -> dict[uuid.UUID, float]:
    """Publishes at `rate`/s (None: at once); the time each was handed to the producer."""
    published: dict[uuid.UUID, float] = {}
    start = time.perf_counter()
    for i, message in enumerate(messages):
        if rate is not None:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        event = new_event(message, producer="router")
        published[message.message_id] = time.time()
        await producer.send(
            topic(ROUTER_TICKETS),
            event.to_bytes(),
            key=event.key.encode(),
            headers=[("event_type", b"message.outbound")],
        )
    await producer.flush()
    return published


async def _sent_times(
    conn: asyncpg.Connection, ids: list[uuid.UUID], timeout: float
) -> dict[uuid.UUID, tuple[float, float]]:
    """When each message was stored (consumed) and recorded sent."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await conn.fetch(
            "SELECT id, state, extract(epoch FROM created_at)::float8 AS stored, "
            "extract(epoch FROM updated_at)::float8 AS at "
            "FROM outbound_messages WHERE id = ANY($1::uuid[]) AND state <> 'queued'",
            ids,
        )
        if len(rows) == len(ids) or time.monotonic() > deadline:
            failed = [r for r in rows if r["state"] != "sent"]
            if failed:
                raise RuntimeError(f"{len(failed)} messages not sent, e.g. {dict(failed[0])}")
            if len(rows) < len(ids):
                raise RuntimeError(f"only {len(rows)} of {len(ids)} sent within {timeout} s")
            return {r["id"]: (r["stored"], r["at"]) for r in rows}
        await asyncio.sleep(0.2)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _ceiling(contacts: list[dict[str, Any]], count: int) -> float:
    """Messages/s of the bare SMTP server and receiver, fed with intake's own code."""
    from ccshared.webhook_transport import post_webhook, webhook_client
    from ccshared.webhooks import WebhookAddressRules, signature_header
    from intake.domain.outbound import (
        EmailRoute,
        OutboundMessage,
        build_email,
        new_email_message_id,
        webhook_body,
    )
    from intake.tasks.delivery import SmtpConfig, SmtpSender

    smtp = SmtpSender(SmtpConfig("127.0.0.1", MAIL_PORT))
    http = webhook_client(
        WebhookAddressRules.parse("127.0.0.1"),
        max_connections=CONCURRENCY,
        max_keepalive=CONCURRENCY,
    )
    from intake.domain.outbound import CustomerContact

    url = f"http://127.0.0.1:{RECEIVER_PORT}/hook"
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        contact = contacts[i % len(contacts)]
        m = _message(contact)
        message = OutboundMessage(m.message_id, m.ticket_id, m.channel, m.kind, m.text, m.html)
        async with slots:
            if m.channel == "email":
                route = EmailRoute(
                    f"c{i}@example.net", None, "Bench <bench@cc.test>", "Re: x", "<a@b>", ("<a@b>",)
                )
                mid = new_email_message_id(m.message_id, route.mail_from)
                mail = build_email(route, message, email_message_id=mid, at=datetime.now(UTC))
                await smtp.send(mail, "bench@cc.test", route.to)
            else:
                target = CustomerContact(uuid.uuid4(), m.channel, "x", datetime.now(UTC))
                body = webhook_body(message, target, attempt=1, created_at="")
                headers = {
                    "Content-Type": "application/json",
                    "X-Intake-Signature": signature_header("whsec_x", int(time.time()), body),
                    "Idempotency-Key": f"ceiling-{m.message_id}",
                }
                await post_webhook(http, url, body, headers, 10.0)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    took = time.perf_counter() - began
    await smtp.close()
    await http.aclose()
    return count / took


def _mailbox_ids(directory: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    for path in (directory / "new").glob("*.eml"):
        for line in path.read_bytes().split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                ids[line.split(b":", 1)[1].strip().decode()] += 1
    return ids


async def _run(seconds: int, maildir: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    key = await create_bench_key(DB)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{INTAKE_PORT}", timeout=30) as client:
        contacts = await _setup(client, key, run)
    conn = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
    producer = make_producer(KAFKA, "bench-outbound")
    await producer.start()
    try:
        # Warm-up: connections, caches, the consumer's first fetch.
        warm = [_message(c) for c in contacts[: len(CHANNELS) * 5 : 5]]
        await _sent_times(conn, list(await _publish(producer, warm, None)), 60)

        steady = [_message(contacts[i % len(contacts)]) for i in range(RATE * seconds)]
        published = await _publish(producer, steady, RATE)
        sent = await _sent_times(conn, list(published), 120)
        took = {m: (sent[m][1] - published[m]) * 1000 for m in published}
        latencies = list(took.values())
        consumed = [(sent[m][0] - published[m]) * 1000 for m in published]
        by_channel: dict[str, list[float]] = {c: [] for c in CHANNELS}
        for message in steady:
            by_channel[message.channel].append(took[message.message_id])

        # Flat out against the ceiling, alternating: this machine's speed drifts from minute
        # to minute, so each round's ratio is of two runs a few seconds apart; the median
        # round is reported.
        flat: list[MessageOutbound] = []
        rounds = []
        for _ in range(ROUNDS):
            batch = [_message(contacts[i % len(contacts)]) for i in range(FLAT)]
            flat += batch
            began = time.time()
            flat_published = await _publish(producer, batch, None)
            flat_sent = await _sent_times(conn, list(flat_published), 300)
            rate = FLAT / (max(at for _, at in flat_sent.values()) - began)
            ceiling = await _ceiling(contacts, FLAT)
            rounds.append({"intake_per_s": round(rate, 1), "ceiling_per_s": round(ceiling, 1)})
    finally:
        await producer.stop()
        await conn.close()
    median = sorted(rounds, key=lambda r: r["intake_per_s"] / r["ceiling_per_s"])[ROUNDS // 2]

    async with httpx.AsyncClient() as client:
        counts = (await client.get(f"http://127.0.0.1:{RECEIVER_PORT}/counts")).json()
    mail_ids = _mailbox_ids(maildir)
    delivered = steady + flat + warm
    ceiling_webhooks = ROUNDS * sum(
        1 for i in range(FLAT) if contacts[i % len(contacts)]["channel"] != "email"
    )
    return {
        "steady": {
            "rate_per_s": RATE,
            "seconds": seconds,
            "messages": len(steady),
            "event_to_sent_ms": {
                "p50": round(statistics.median(latencies), 1),
                "p99": round(_percentile(latencies, 0.99), 1),
                "max": round(max(latencies), 1),
            },
            "event_to_stored_ms": {
                "p50": round(statistics.median(consumed), 1),
                "p99": round(_percentile(consumed, 0.99), 1),
            },
            "p99_by_channel_ms": {c: round(_percentile(v, 0.99), 1) for c, v in by_channel.items()},
        },
        "flat_out": {"messages": FLAT, "messages_per_s": median["intake_per_s"]},
        "ceiling": {"messages": FLAT, "messages_per_s": median["ceiling_per_s"]},
        "share_of_ceiling": round(median["intake_per_s"] / median["ceiling_per_s"], 3),
        "rounds": rounds,
        "exactly_once": {
            "messages": len(delivered),
            "webhooks_expected": sum(1 for m in delivered if m.channel != "email"),
            "webhooks_received": counts["received"] - ceiling_webhooks,
            "webhook_ids_received_twice": counts["duplicates"],
            "emails_expected": sum(1 for m in delivered if m.channel == "email"),
            "emails_received": sum(mail_ids.values()) - (ROUNDS * FLAT - ceiling_webhooks),
            "email_ids_received_twice": sum(1 for n in mail_ids.values() if n > 1),
        },
    }


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def main(duration: int | None = None) -> None:
    seconds = duration or STEADY_S
    recreate_database(DB)
    suffix = f".bench-{uuid.uuid4().hex[:8]}"
    asyncio.run(start_groups_at_end(suffix))
    maildir = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    mailbox = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "deploy/local/mailbox.py"),
            "--dir",
            str(maildir),
            "serve",
            "--port",
            str(MAIL_PORT),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    servers = []
    try:
        _wait_port(MAIL_PORT)
        servers.append(
            start_uvicorn(
                "outbound-receiver",
                "bench.receiver_app:create_app",
                RECEIVER_PORT,
                1,
                {},
                "/counts",
            )
        )
        env = {
            "INTAKE_DATABASE_URL": socket_database_url(DB),
            "INTAKE_KAFKA_BOOTSTRAP": KAFKA,
            "INTAKE_CONSUMER_GROUP_SUFFIX": suffix,
            "INTAKE_SMTP_PORT": str(MAIL_PORT),
            "INTAKE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
            "INTAKE_DELIVERY_CONCURRENCY": str(CONCURRENCY),
            "INTAKE_LOG_LEVEL": "WARNING",
            "CC_DEVELOPMENT": os.environ.get("CC_DEVELOPMENT", "1"),
        }
        servers.append(
            start_uvicorn(
                "outbound-intake", "intake.app:create_app", INTAKE_PORT, 1, env, "/readyz"
            )
        )
        result = asyncio.run(_run(seconds, maildir))
    finally:
        for server in reversed(servers):
            server.stop()
        mailbox.terminate()
        mailbox.wait(timeout=30)
    steady = result["steady"]
    result["target"] = (
        f"event → sent p99 < {TARGET_P99_MS:.0f} ms at {RATE}/s, flat out ≥ "
        f"{TARGET_SHARE:.0%} of the ceiling"
    )
    result["target_met"] = (
        steady["event_to_sent_ms"]["p99"] < TARGET_P99_MS
        and result["share_of_ceiling"] >= TARGET_SHARE
    )
    path = write_result("outbound", result)
    print(
        f"\noutbound: {steady['messages']} messages at {RATE}/s over four channels: event → sent "
        f"p50 {steady['event_to_sent_ms']['p50']} ms, p99 {steady['event_to_sent_ms']['p99']} ms "
        f"(of which event → stored p50 {steady['event_to_stored_ms']['p50']} ms, "
        f"p99 {steady['event_to_stored_ms']['p99']} ms) "
        f"(by channel {steady['p99_by_channel_ms']})\n"
        f"flat out {result['flat_out']['messages_per_s']}/s against a ceiling of "
        f"{result['ceiling']['messages_per_s']}/s ({result['share_of_ceiling']:.0%})\n"
        f"delivered once each: {result['exactly_once']}\n"
        f"target: {result['target']} -> {'met' if result['target_met'] else 'NOT met'}\n"
        f"written to {path}"
    )
