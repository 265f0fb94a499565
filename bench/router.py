"""Router: contacts routed and assigned per second, and p50/p99 from `POST /v1/contacts` to the
assignment event, with 300 agents over the six default queues at a steady offered load; then
the router's own throughput draining a backlog, beside a consumer that reads the same messages
and does nothing (the ceiling).

Load generator: an open-loop asyncio client (httpx) posting at a fixed rate on this machine.
Latency is measured per new ticket: from sending the contact's POST to receiving the
`ticket.assigned` event for the ticket it opened on `router.tickets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bench.harness import (
    KAFKA,
    create_bench_key,
    database_url,
    recreate_database_async,
    start_uvicorn,
    supervisor_headers,
    write_result,
)
from ccshared.events import decode_event
from ccshared.events.payloads import ContactReceived, TicketAssigned, TicketOpened
from ccshared.kafka import commit_group_at_end, ensure_topics, topic_partitions

RATE = int(os.environ.get("BENCH_ROUTER_RATE", "500"))
AGENTS = int(os.environ.get("BENCH_ROUTER_AGENTS", "300"))
BACKLOG = int(os.environ.get("BENCH_ROUTER_BACKLOG", "3000"))
SKILLS = ["complaints", "technical", "billing", "vip", "escalations"]
TEXTS = [
    ("phone", "我上周买的洗衣机一直漏水，已经打了三次电话了，我要投诉！"),
    ("email", "Hello, I returned the jacket two weeks ago and still have no refund."),
    ("chat", "你好，请问会员积分怎么兑换？"),
    ("social", "your app has been down for an hour, cannot pay at checkout. Fix it!"),
    ("chat", "发票开错了，请重新开具"),
]


def _contact(n: int, run: str) -> dict[str, Any]:
    channel, text = TEXTS[n % len(TEXTS)]
    ext = f"rb-{run}-{n}"
    body: dict[str, Any] = {
        "channel": channel,
        "external_id": ext,
        "received_at": "2026-11-25T01:00:00Z",
        "customer": {"email": f"c{run}{n}@example.com"},
        "text": text,
    }
    if channel == "phone":
        body["phone"] = {
            "caller": f"+8613{n % 1_000_000_000:09d}",
            "call_id": ext,
            "direction": "inbound",
        }
        body["customer"] = {"phone": body["phone"]["caller"]}
    elif channel == "email":
        body["email"] = {
            "message_id": f"<{ext}@mail.example.com>",
            "from": f"c{run}{n}@example.com",
        }
    elif channel == "chat":
        body["chat"] = {"session_id": f"s-{ext}"}
    else:
        body["social"] = {"platform": "x", "post_id": ext, "author": f"@u{run}{n}"}
        body["customer"] = {"social_handle": f"@u{run}{n}"}
    return body


class Tail:
    """Records when each ticket.opened / ticket.assigned event is received."""

    def __init__(self) -> None:
        self.ticket_of_contact: dict[str, str] = {}
        self.assigned_at: dict[str, float] = {}
        self.consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        tps = await topic_partitions(self.consumer, ["router.tickets"])
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    _, payload = decode_event(record.value)
                    if isinstance(payload, TicketOpened) and payload.contact_id:
                        self.ticket_of_contact[str(payload.contact_id)] = str(payload.ticket_id)
                    elif isinstance(payload, TicketAssigned):
                        self.assigned_at.setdefault(str(payload.ticket_id), now)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        # aiokafka 0.14 lets a group-less consumer's internal task's CancelledError escape stop().
        with contextlib.suppress(asyncio.CancelledError):
            await self.consumer.stop()


async def _setup(router_url: str, intake_db: str) -> str:
    headers = supervisor_headers()
    async with httpx.AsyncClient(base_url=router_url, timeout=30, headers=headers) as client:
        for n in range(AGENTS):
            skills = {SKILLS[n % len(SKILLS)]: 1 + n % 5, SKILLS[(n + 2) % len(SKILLS)]: 3}
            agent = f"agent-{n:03d}"
            created = await client.put(
                f"/v1/agents/{agent}",
                json={
                    "name": agent,
                    "skills": skills,
                    "capacity": {"phone": 5, "chat": 20, "email": 20, "social": 20},
                },
            )
            created.raise_for_status()
            status = await client.put(f"/v1/agents/{agent}/status", json={"status": "available"})
            status.raise_for_status()
    return await create_bench_key(intake_db.rsplit("/", 1)[1])


async def _steady_load(intake_url: str, key: str, seconds: int, run: str) -> dict[str, float]:
    sent: dict[str, float] = {}
    errors = 0
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(
        base_url=intake_url, limits=limits, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:

        async def post(n: int) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.post("/v1/contacts", json=_contact(n, run))
            except httpx.HTTPError:
                errors += 1
                return
            if response.status_code == 202:
                sent[response.json()["id"]] = started
            else:
                errors += 1

        tasks = []
        t0 = time.perf_counter()
        for n in range(RATE * seconds):
            delay = t0 + n / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(n)))
        await asyncio.gather(*tasks)
    return sent | {"__errors__": float(errors)}


async def _drain_rate(router_db: str, intake_url: str, key: str, suffix: str) -> dict[str, float]:
    """Router throughput on a backlog, and a no-op consumer's on the same messages."""
    group = f"router.contacts{suffix}"
    await commit_group_at_end(KAFKA, group, ["intake.contacts"])
    await commit_group_at_end(KAFKA, f"noop{suffix}", ["intake.contacts"])
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(
        base_url=intake_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for start in range(0, BACKLOG, 100):
            items = [_contact(n, run) for n in range(start, min(start + 100, BACKLOG))]
            response = await client.post("/v1/contacts:batch", json={"items": items})
            assert response.status_code == 200, response.text
    # Wait until every contact is on Kafka.
    noop = AIOKafkaConsumer(
        "intake.contacts",
        bootstrap_servers=KAFKA,
        group_id=f"noop{suffix}",
        enable_auto_commit=False,
    )
    await noop.start()
    read, first = 0, None
    while read < BACKLOG:
        batch = await noop.getmany(timeout_ms=1000)
        if batch and first is None:
            first = time.perf_counter()
        for records in batch.values():
            for record in records:
                _, payload = decode_event(record.value)
                read += isinstance(payload, ContactReceived)
    noop_rate = read / (time.perf_counter() - (first or time.perf_counter()))
    await noop.stop()

    router = start_uvicorn(
        "router-drain",
        "router.app:create_app",
        18202,
        1,
        {
            "ROUTER_DATABASE_URL": router_db,
            "ROUTER_KAFKA_BOOTSTRAP": KAFKA,
            "ROUTER_CONSUMER_GROUP_SUFFIX": suffix,
            "ROUTER_LOG_LEVEL": "WARNING",
        },
        "/healthz",
    )
    conn = await asyncpg.connect(router_db.replace("+asyncpg", ""))
    try:
        base = int(await conn.fetchval("SELECT count(*) FROM ticket_contacts"))
        started, done = time.perf_counter(), 0
        while done < BACKLOG and time.perf_counter() - started < 300:
            await asyncio.sleep(0.2)
            done = int(await conn.fetchval("SELECT count(*) FROM ticket_contacts")) - base
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
        router.stop()
    return {
        "router_drain_per_s": done / elapsed,
        "noop_consumer_per_s": noop_rate,
        "backlog": BACKLOG,
    }


async def _run(seconds: int) -> dict[str, Any]:
    suffix = f".bench-{uuid.uuid4().hex[:6]}"
    for db in ("bench_router_intake", "bench_router"):
        await recreate_database_async(db)
    await ensure_topics(KAFKA)
    await commit_group_at_end(KAFKA, f"router.contacts{suffix}", ["intake.contacts"])
    intake_db, router_db = database_url("bench_router_intake"), database_url("bench_router")
    intake = start_uvicorn(
        "intake-r",
        "intake.app:create_app",
        18201,
        2,
        {
            "INTAKE_DATABASE_URL": intake_db,
            "INTAKE_KAFKA_BOOTSTRAP": KAFKA,
            "INTAKE_WORKERS": "2",
            "INTAKE_CONSUMER_GROUP_SUFFIX": suffix,
            "INTAKE_CONSUMER_OFFSET_RESET": "latest",
            "INTAKE_LOG_LEVEL": "WARNING",
        },
        "/readyz",
    )
    router = start_uvicorn(
        "router",
        "router.app:create_app",
        18202,
        1,
        {
            "ROUTER_DATABASE_URL": router_db,
            "ROUTER_KAFKA_BOOTSTRAP": KAFKA,
            "ROUTER_CONSUMER_GROUP_SUFFIX": suffix,
            "ROUTER_LOG_LEVEL": "WARNING",
        },
        "/readyz",
    )
    tail = Tail()
    try:
        return await _measure(intake, router, tail, router_db, intake_db, suffix, seconds)
    finally:
        router.stop()
        intake.stop()


async def _measure(
    intake: Any,
    router: Any,
    tail: Tail,
    router_db: str,
    intake_db: str,
    suffix: str,
    seconds: int,
) -> dict[str, Any]:
    try:
        key = await _setup("http://127.0.0.1:18202", intake_db)
        await tail.start()
        cpu0 = router.cpu_seconds()
        sent = await _steady_load("http://127.0.0.1:18201", key, seconds, uuid.uuid4().hex[:6])
        errors = int(sent.pop("__errors__"))
        deadline = time.perf_counter() + 20
        while time.perf_counter() < deadline:
            opened = [c for c in sent if c in tail.ticket_of_contact]
            if len(opened) == len(sent) and all(
                tail.ticket_of_contact[c] in tail.assigned_at for c in opened
            ):
                break
            await asyncio.sleep(0.2)
        router_cpu = router.cpu_seconds() - cpu0
        router_rss = router.rss_mb()
    finally:
        await tail.stop()
        router.stop()
    latencies = sorted(
        (tail.assigned_at[tail.ticket_of_contact[c]] - t) * 1000
        for c, t in sent.items()
        if c in tail.ticket_of_contact and tail.ticket_of_contact[c] in tail.assigned_at
    )
    drain = await _drain_rate(router_db, "http://127.0.0.1:18201", key, suffix + "d")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {
        "load_generator": f"open-loop asyncio/httpx client, {RATE} contacts/s for {seconds} s",
        "agents": AGENTS,
        "posted": len(sent),
        "post_errors": errors,
        "assigned": len(latencies),
        "assigned_per_s": len(latencies) / seconds,
        "post_to_assignment_ms": {
            "p50": round(pct(0.5), 1),
            "p99": round(pct(0.99), 1),
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "router_cpu_s_per_1k": round(1000 * router_cpu / max(1, len(sent)), 3),
        "router_rss_mb": round(router_rss, 1),
        **{k: round(v, 1) for k, v in drain.items()},
        "drain_ratio_to_noop": round(drain["router_drain_per_s"] / drain["noop_consumer_per_s"], 3)
        if drain["noop_consumer_per_s"]
        else None,
        "target": "p99 < 250 ms at 500 contacts/s; router drain >= 0.5 x no-op consumer",
    }


def main(duration: int | None = None) -> None:
    seconds = duration or int(os.environ.get("BENCH_SECONDS", "10"))
    result = asyncio.run(_run(seconds))
    result["target_met"] = (
        result["post_to_assignment_ms"]["p99"] < 250
        and result["assigned"] == result["posted"]
        and (result["drain_ratio_to_noop"] or 0) >= 0.5
    )
    path = write_result("router", result)
    print(f"\nrouter benchmark ({AGENTS} agents, {RATE}/s offered for {seconds} s)")
    print(
        f"posted {result['posted']} (errors {result['post_errors']}), assigned "
        f"{result['assigned']}; POST→assignment p50 {result['post_to_assignment_ms']['p50']} ms, "
        f"p99 {result['post_to_assignment_ms']['p99']} ms"
    )
    print(
        f"backlog of {result['backlog']:.0f}: router {result['router_drain_per_s']}/s vs no-op "
        f"consumer {result['noop_consumer_per_s']}/s (ratio {result['drain_ratio_to_noop']}); "
        f"target met: {result['target_met']}; written to {path}"
    )
