"""Outbound delivery (`python -m bench outbound`): agents' replies posted through the router's API
(`POST /v1/tickets/{id}/reply`) on all four channels, delivered by intake to a local SMTP server
(deploy/local/mailbox.py) and a local webhook receiver (bench/receiver_app.py). The router,
intake, the mailbox and the receiver each run as a process of their own, on fresh databases.

0. Setup, outside every measured window: intake's outbound URL registered; `AGENTS` agents
   available; `CONTACTS_PER_CHANNEL` contacts per channel posted to intake, which the router
   opens as tickets and offers; the agents accept until they hold every ticket. A warm-up of a
   few replies (connections, caches, the consumers' first fetches).
1. Steady: replies posted at `RATE`/s for the run's duration (default 20 s), open loop (a slow
   router gets more replies in flight, not fewer), round-robin over the tickets so a quarter per
   channel (e-mail, chat, social, phone call-back requests), each by the agent holding the
   ticket. Reply → sent is from the reply's scheduled send to intake's recording it `sent` (the
   row's `updated_at`, same clock); reply → stored in intake is beside it, and the reply API's
   own answer time.
2. Flat out: `FLAT` replies handed at once to `CONNECTIONS` connections; replies/s from the first
   post to the last `sent`.
3. Ceiling, right after each flat-out run: as many messages built the same way (intake's own MIME
   and webhook body code) and fed directly to the same SMTP server and receiver with intake's own
   senders and concurrency: no router, no Kafka, no PostgreSQL (the issue's "the bare SMTP server
   and receiver fed directly"). `ROUNDS` rounds of 2 and 3; the round with the median ratio is
   reported, every round is in the results.

Afterwards every reply the router accepted must be one outbound message in intake, and each
message id must have reached its receiver exactly once (the SMTP server by Message-ID, the
receiver by Idempotency-Key). The machine's load average is recorded at each phase: on a shared
machine it says what the figures are worth. Results in bench/results/outbound.json.
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
    Server,
    create_bench_key,
    database_url,
    recreate_database,
    socket_database_url,
    start_groups_at_end,
    start_uvicorn,
    supervisor_headers,
    user_headers,
    write_result,
)
from bench.loadgen import RawHttpClient, open_loop
from ccshared.events.payloads import MessageOutbound

DB = "bench_outbound"
ROUTER_DB = "bench_outbound_router"
INTAKE_PORT = 18151
RECEIVER_PORT = 18152
MAIL_PORT = 18153
ROUTER_PORT = 18154
RATE = 100
STEADY_S = 20
FLAT = 400
ROUNDS = 3
CONTACTS_PER_CHANNEL = 25
AGENTS = 10
CHANNELS = ("email", "chat", "social", "phone")
SKILLS = ("complaints", "technical", "billing", "vip", "escalations")
TARGET_P99_MS = 500.0
TARGET_SHARE = 0.5
CONCURRENCY = 32  # intake's delivery concurrency, and the ceiling's
CONNECTIONS = 32  # the agents' connections to the router
REPLY = "您好！您的订单已发出，预计明天送达。Your order ships today, arriving tomorrow. #{n}"


def _contact(channel: str, n: int, run: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    email = f"{channel}{n}.{run}@example.net"  # one customer per contact: one ticket each
    body: dict[str, Any] = {
        "channel": channel,
        "external_id": f"{run}-{channel}-{n}",
        "received_at": now,
        "text": "你好，我的订单还没到。",
        "customer": {"name": f"客户 {n}", "email": email},
        "subject": f"订单 {n} 物流",
    }
    if channel == "email":
        body["email"] = {"message_id": f"<{run}-{n}@example.net>", "from": email}
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
        body["customer"] = {"name": f"客户 {n}", "phone": body["phone"]["caller"]}
    return body


def _message(channel: str) -> MessageOutbound:
    """What the router publishes for a reply on `channel` (the ceiling builds from it)."""
    phone = channel == "phone"
    return MessageOutbound(
        message_id=uuid.uuid4(),
        ticket_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        channel=channel,
        kind="callback_request" if phone else "reply",
        author="agent:bench",
        text=REPLY.format(n=0),
        reply_to_contact_id=uuid.uuid4(),
        created_at=datetime.now(UTC),
    )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def _setup(run: str) -> list[tuple[str, str, str]]:
    """Intake's outbound URL, the agents, the contacts; returns every ticket as (ticket id,
    channel, the agent holding it), once the agents hold them all."""
    key = await create_bench_key(DB)
    intake = f"http://127.0.0.1:{INTAKE_PORT}"
    router = f"http://127.0.0.1:{ROUTER_PORT}"
    agents = [f"bench-{run}-{i}" for i in range(AGENTS)]
    room = -(-CONTACTS_PER_CHANNEL // AGENTS) + 1
    async with httpx.AsyncClient(timeout=30) as client:
        auth = {"Authorization": f"Bearer {key}"}
        registered = await client.put(
            f"{intake}/v1/integration/outbound",
            json={
                "url": f"http://127.0.0.1:{RECEIVER_PORT}/hook",
                "mail_from": "Bench <bench@cc.test>",
            },
            headers=auth,
        )
        registered.raise_for_status()
        for agent in agents:
            created = await client.put(
                f"{router}/v1/agents/{agent}",
                json={
                    "name": agent,
                    "skills": dict.fromkeys(SKILLS, 3),
                    "capacity": dict.fromkeys(CHANNELS, room),
                },
                headers=supervisor_headers(),
            )
            created.raise_for_status()
            status = await client.put(
                f"{router}/v1/agents/{agent}/status",
                json={"status": "available"},
                headers=supervisor_headers(),
            )
            status.raise_for_status()
        channel_of: dict[str, str] = {}
        for n in range(CONTACTS_PER_CHANNEL):
            for channel in CHANNELS:
                posted = await client.post(
                    f"{intake}/v1/contacts", json=_contact(channel, n, run), headers=auth
                )
                posted.raise_for_status()
                channel_of[posted.json()["id"]] = channel
        held: dict[str, str] = {}  # ticket -> agent
        tokens = {agent: user_headers(agent, "agent") for agent in agents}
        deadline = time.monotonic() + 120
        while len(held) < len(channel_of):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agents hold {len(held)} of {len(channel_of)} tickets")
            for agent in agents:
                offers = await client.get(
                    f"{router}/v1/agents/{agent}/offers", headers=tokens[agent]
                )
                offers.raise_for_status()
                for offer in offers.json():
                    accepted = await client.post(
                        f"{router}/v1/offers/{offer['id']}/accept", headers=tokens[agent]
                    )
                    if accepted.status_code == 200:
                        held[accepted.json()["id"]] = agent
            await asyncio.sleep(0.2)
    conn = await asyncpg.connect(database_url(ROUTER_DB).replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (tc.ticket_id) tc.ticket_id::text AS ticket, tc.contact_id::text "
            "AS contact FROM ticket_contacts tc WHERE tc.ticket_id = ANY($1::uuid[])",
            list(held),
        )
    finally:
        await conn.close()
    return interleaved([(r["ticket"], channel_of[r["contact"]], held[r["ticket"]]) for r in rows])


def interleaved(tickets: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The tickets (id, channel, agent) ordered channel after channel, so that replies
    round-robin over them are a quarter per channel at every moment of the load."""
    by_channel = {c: [t for t in tickets if t[1] == c] for c in CHANNELS}
    return [t for group in zip(*by_channel.values(), strict=False) for t in group]


class Agents:
    """The agents' replies over one pool of connections to the router; reply `n` goes to
    ticket `n % len(tickets)` in the name of the agent holding it."""

    def __init__(self, client: RawHttpClient, tickets: list[tuple[str, str, str]]) -> None:
        self.client = client
        self.tickets = tickets
        self.tokens = {agent: user_headers(agent, "agent") for _, _, agent in tickets}
        self.posted: dict[int, float] = {}  # reply number -> wall-clock time it was sent
        self.answered_ms: list[float] = []
        self.errors: Counter[str] = Counter()

    async def reply(self, n: int, started: float | None = None) -> None:
        """Reply `n`; `started` is its scheduled start on `time.perf_counter()` (open loop),
        None: now."""
        ticket, _, agent = self.tickets[n % len(self.tickets)]
        now = time.perf_counter()
        sent_at = time.time() - (now - started if started is not None else 0.0)
        try:
            response = await self.client.request(
                "POST",
                f"/v1/tickets/{ticket}/reply",
                {"text": REPLY.format(n=n)},
                headers=self.tokens[agent],
            )
        except OSError as exc:
            self.errors[type(exc).__name__] += 1
            return
        if response.status == 200:
            self.posted[n] = sent_at
            self.answered_ms.append((time.perf_counter() - (started or now)) * 1000)
        else:
            self.errors[f"reply {response.status}"] += 1

    def channel_of(self, n: int) -> str:
        return self.tickets[n % len(self.tickets)][1]


async def _sent_times(
    conn: asyncpg.Connection, numbers: range, timeout: float
) -> dict[int, tuple[float, float]]:
    """When each reply (by its number) was stored in intake and recorded sent."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await conn.fetch(
            "SELECT substring(payload->>'text' from '#([0-9]+)$')::int AS n, state, "
            "extract(epoch FROM created_at)::float8 AS stored, "
            "extract(epoch FROM updated_at)::float8 AS at "
            "FROM outbound_messages WHERE state <> 'queued' "
            "AND substring(payload->>'text' from '#([0-9]+)$')::int BETWEEN $1 AND $2",
            numbers.start,
            numbers.stop - 1,
        )
        if len(rows) >= len(numbers) or time.monotonic() > deadline:
            failed = [r for r in rows if r["state"] != "sent"]
            if failed:
                raise RuntimeError(f"{len(failed)} messages not sent, e.g. {dict(failed[0])}")
            if len(rows) < len(numbers):
                raise RuntimeError(f"only {len(rows)} of {len(numbers)} sent within {timeout} s")
            return {r["n"]: (r["stored"], r["at"]) for r in rows}
        await asyncio.sleep(0.2)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 1),
        "p99": round(_percentile(values, 0.99), 1),
        "max": round(max(values), 1),
    }


async def _ceiling(channels: list[str], count: int) -> float:
    """Messages/s of the bare SMTP server and receiver, fed with intake's own code."""
    from ccshared.webhook_transport import post_webhook, webhook_client
    from ccshared.webhooks import WebhookAddressRules, signature_header
    from intake.domain.outbound import (
        CustomerContact,
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
    url = f"http://127.0.0.1:{RECEIVER_PORT}/hook"
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        m = _message(channels[i % len(channels)])
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


async def _loop_lag(into: list[float]) -> None:
    """How late this process's event loop wakes a 50 ms sleep: the agents' clocks are this
    loop's, so a late loop would show as the services' latency."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(0.05)
        into.append((time.perf_counter() - began - 0.05) * 1000)


async def _run(seconds: int, maildir: Path, servers: dict[str, Server]) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    load: dict[str, list[float]] = {"start": _load()}
    began_setup = time.monotonic()
    tickets = await _setup(run)
    setup_s = time.monotonic() - began_setup
    load["after_setup"] = _load()
    conn = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
    router_conn = await asyncpg.connect(database_url(ROUTER_DB).replace("+asyncpg", ""))
    lags: list[float] = []
    lag_task = asyncio.create_task(_loop_lag(lags))
    try:
        async with RawHttpClient("127.0.0.1", ROUTER_PORT, connections=CONNECTIONS) as client:
            agents = Agents(client, tickets)
            # Warm-up: each ticket answered once (connections, caches, first fetches).
            warm = range(len(tickets))
            await asyncio.gather(*(agents.reply(n) for n in warm))
            await _sent_times(conn, warm, 120)

            steady = range(warm.stop, warm.stop + RATE * seconds)
            lags.clear()
            cpu = {name: server.cpu_seconds() for name, server in servers.items()}
            behind = await open_loop(RATE, len(steady), lambda i, due: agents.reply(steady[i], due))
            steady_lag = list(lags)
            load["after_steady"] = _load()
            sent = await _sent_times(conn, steady, 120)
            cpu_ms = {
                name: round((server.cpu_seconds() - cpu[name]) * 1000 / len(steady), 2)
                for name, server in servers.items()
            }
            posted = {n: agents.posted[n] for n in steady if n in agents.posted}
            took = {n: (sent[n][1] - posted[n]) * 1000 for n in posted}
            stored = [(sent[n][0] - posted[n]) * 1000 for n in posted]
            answered = list(agents.answered_ms[len(warm) :])
            by_channel: dict[str, list[float]] = {c: [] for c in CHANNELS}
            for n, ms in took.items():
                by_channel[agents.channel_of(n)].append(ms)

            # Flat out against the ceiling, alternating: this machine's speed drifts from
            # minute to minute, so each round's ratio is of two runs a few seconds apart; the
            # median round is reported.
            rounds: list[dict[str, Any]] = []
            first = steady.stop
            for _ in range(ROUNDS):
                batch = range(first, first + FLAT)
                first = batch.stop
                began = time.time()
                await asyncio.gather(*(agents.reply(n) for n in batch))
                flat_sent = await _sent_times(conn, batch, 300)
                rate = FLAT / (max(at for _, at in flat_sent.values()) - began)
                ceiling = await _ceiling([agents.channel_of(n) for n in batch], FLAT)
                rounds.append(
                    {
                        "replies_per_s": round(rate, 1),
                        "ceiling_per_s": round(ceiling, 1),
                        "load_average": _load(),
                    }
                )
            replies = len(agents.posted)
    finally:
        lag_task.cancel()
        in_router = await router_conn.fetchval(
            "SELECT count(*) FROM ticket_messages WHERE direction = 'outbound'"
        )
        by_kind = {
            r["email"]: r["n"]
            for r in await conn.fetch(
                "SELECT channel = 'email' AS email, count(*) AS n FROM outbound_messages "
                "WHERE state = 'sent' GROUP BY 1"
            )
        }
        await router_conn.close()
        await conn.close()
    median = sorted(rounds, key=lambda r: r["replies_per_s"] / r["ceiling_per_s"])[ROUNDS // 2]

    async with httpx.AsyncClient() as client:
        counts = (await client.get(f"http://127.0.0.1:{RECEIVER_PORT}/counts")).json()
    mail_ids = _mailbox_ids(maildir)
    ceiling_channels = [tickets[n % len(tickets)][1] for n in range(FLAT)]  # the same mix
    ceiling_webhooks = ROUNDS * sum(1 for c in ceiling_channels if c != "email")
    return {
        "setup": {
            "tickets": len(tickets),
            "agents": AGENTS,
            "seconds": round(setup_s, 1),
        },
        "steady": {
            "rate_per_s": RATE,
            "seconds": seconds,
            "replies": len(steady),
            "replies_accepted": len(posted),
            "reply_to_sent_ms": _ms(list(took.values())),
            "reply_to_stored_in_intake_ms": _ms(stored),
            "reply_answered_ms": _ms(answered),
            "p99_by_channel_ms": {c: round(_percentile(v, 0.99), 1) for c, v in by_channel.items()},
            "cpu_ms_per_reply": cpu_ms,
            "generator_behind_s": round(behind, 3),
            "generator_loop_lag_ms": _ms(steady_lag),
        },
        "flat_out": {"replies": FLAT, "replies_per_s": median["replies_per_s"]},
        "ceiling": {"messages": FLAT, "messages_per_s": median["ceiling_per_s"]},
        "share_of_ceiling": round(median["replies_per_s"] / median["ceiling_per_s"], 3),
        "rounds": rounds,
        "load_average": load,
        "errors": dict(agents.errors),
        "exactly_once": {
            "replies_accepted_by_the_router": replies,
            "replies_stored_by_the_router": in_router,
            "sent_by_intake": sum(by_kind.values()),
            "webhooks_expected": by_kind.get(False, 0),
            "webhooks_received": counts["received"] - ceiling_webhooks,
            "webhook_ids_received_twice": counts["duplicates"],
            "emails_expected": by_kind.get(True, 0),
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
    recreate_database(ROUTER_DB)
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
    servers: dict[str, Server] = {}
    development = os.environ.get("CC_DEVELOPMENT", "1")
    try:
        _wait_port(MAIL_PORT)
        servers["receiver"] = start_uvicorn(
            "outbound-receiver",
            "bench.receiver_app:create_app",
            RECEIVER_PORT,
            1,
            {},
            "/counts",
        )
        intake_env = {
            "INTAKE_DATABASE_URL": socket_database_url(DB),
            "INTAKE_KAFKA_BOOTSTRAP": KAFKA,
            "INTAKE_CONSUMER_GROUP_SUFFIX": suffix,
            "INTAKE_SMTP_PORT": str(MAIL_PORT),
            "INTAKE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
            "INTAKE_DELIVERY_CONCURRENCY": str(CONCURRENCY),
            "INTAKE_LOG_LEVEL": "WARNING",
            "CC_DEVELOPMENT": development,
        }
        servers["intake"] = start_uvicorn(
            "outbound-intake", "intake.app:create_app", INTAKE_PORT, 1, intake_env, "/readyz"
        )
        router_env = {
            "ROUTER_DATABASE_URL": socket_database_url(ROUTER_DB),
            "ROUTER_KAFKA_BOOTSTRAP": KAFKA,
            "ROUTER_CONSUMER_GROUP_SUFFIX": suffix,
            "ROUTER_LOG_LEVEL": "WARNING",
            "ROUTER_ASSIGN_INTERVAL_S": "0.25",
            # An offer the setup is slow to accept must not send its agent away.
            "ROUTER_MISSED_OFFER_STATUS": "available",
            "CC_DEVELOPMENT": development,
        }
        servers["router"] = start_uvicorn(
            "outbound-router", "router.app:create_app", ROUTER_PORT, 1, router_env, "/readyz"
        )
        result = asyncio.run(_run(seconds, maildir, servers))
    finally:
        for server in reversed(servers.values()):
            server.stop()
        mailbox.terminate()
        mailbox.wait(timeout=30)
    steady = result["steady"]
    result["target"] = (
        f"reply → sent p99 < {TARGET_P99_MS:.0f} ms at {RATE} replies/s, flat out ≥ "
        f"{TARGET_SHARE:.0%} of the ceiling"
    )
    result["target_met"] = (
        steady["reply_to_sent_ms"]["p99"] < TARGET_P99_MS
        and result["share_of_ceiling"] >= TARGET_SHARE
    )
    path = write_result("outbound", result)
    print(
        f"\noutbound: {steady['replies']} replies at {RATE}/s through the router's API over "
        f"four channels: reply → sent p50 {steady['reply_to_sent_ms']['p50']} ms, "
        f"p99 {steady['reply_to_sent_ms']['p99']} ms (reply → stored in intake p50 "
        f"{steady['reply_to_stored_in_intake_ms']['p50']} ms, p99 "
        f"{steady['reply_to_stored_in_intake_ms']['p99']} ms; the API answered p99 "
        f"{steady['reply_answered_ms']['p99']} ms) (by channel {steady['p99_by_channel_ms']})\n"
        f"CPU ms per reply {steady['cpu_ms_per_reply']}\n"
        f"flat out {result['flat_out']['replies_per_s']} replies/s against a ceiling of "
        f"{result['ceiling']['messages_per_s']}/s ({result['share_of_ceiling']:.0%})\n"
        f"load average {result['load_average']}, rounds {result['rounds']}\n"
        f"delivered once each: {result['exactly_once']}; errors {result['errors']}\n"
        f"target: {result['target']} -> {'met' if result['target_met'] else 'NOT met'}\n"
        f"written to {path}"
    )
