"""The console's live stream at 500 connected browsers: how long an event takes from its publish
to each stream that may see it (p50/p99), beside the ceiling of a bare Kafka consumer on the
same topics in the same run.

The console runs as a uvicorn process (one worker) on a database of its own, reading the
benchmark's topics (`bench.` prefix). Its users are written straight into its database: 450
agents and 50 supervisors, all with ONE argon2id hash (hashing 500 passwords would cost ~30 s of
CPU and measure nothing here) and each with a session row whose cookie the load generator
keeps, as if each had signed in. A stand-in router (served by the load generator) answers the
console's two questions about an agent (GET /v1/agents/{id}, GET /v1/queues): 9 queues of 50
agents each, by skill.

The load generator (this process) holds the 500 streams on raw sockets (HTTP/1.1, chunked),
publishes a steady mix of events (`BENCH_LIVE_RATE` a second for `BENCH_LIVE_SECONDS`):
40 % an offer notification to one agent, 30 % a ticket routed to a queue (its 50 agents and the
supervisors), 20 % a ticket assigned to an agent (the agent and the supervisors), 10 % an SLA
warning (supervisors); each event's `occurred_at` is taken at publish, and each stream notes
the time each event arrives. A bare aiokafka consumer (no group, every partition from the end)
in the same process measures the same thing for every event: the floor Kafka and this machine
set, the ceiling the console can approach. A stream that ends reconnects with its
Last-Event-ID, as a browser would (counted)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import uvicorn
from aiokafka import AIOKafkaConsumer

from bench.harness import (
    KAFKA,
    TOPIC_PREFIX,
    database_url,
    recreate_database,
    start_uvicorn,
    write_result,
)
from ccshared.db import make_engine
from ccshared.events import new_event
from ccshared.events.catalog import FEEDBACK_EVENTS, ROUTER_TICKETS, SLA_EVENTS
from ccshared.events.payloads import NotificationCreated, SlaWarning, TicketAssigned, TicketRouted
from ccshared.kafka import ensure_topics, make_producer, topic_partitions

DB = "bench_console"
PORT = 18105
ROUTER_PORT = 18106
STREAMS = int(os.environ.get("BENCH_LIVE_STREAMS", "500"))
SUPERVISORS = int(os.environ.get("BENCH_LIVE_SUPERVISORS", str(STREAMS // 10)))
QUEUES = 9
RATE = float(os.environ.get("BENCH_LIVE_RATE", "40"))
SECONDS = int(os.environ.get("BENCH_LIVE_SECONDS", "30"))
TARGET_P99_MS = 500.0
TOPICS = (ROUTER_TICKETS, SLA_EVENTS, FEEDBACK_EVENTS)
# Topics of this benchmark's own: the other benchmarks' events on `bench.` topics (a run of
# another, at the same time) must not reach its streams.
PREFIX = TOPIC_PREFIX + "live."


def topic(name: str) -> str:
    return PREFIX + name


def _agents() -> list[str]:
    return [f"agent{i:03d}" for i in range(STREAMS - SUPERVISORS)]


def _queue_of(agent: str) -> int:
    return int(agent.removeprefix("agent")) % QUEUES


def _stand_in_router() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/agents/{agent_id}")
    async def agent(agent_id: str) -> dict[str, Any]:
        skill = f"skill{_queue_of(agent_id)}" if agent_id.startswith("agent") else "none"
        return {"id": agent_id, "skills": {skill: 3}}

    @app.get("/v1/queues")
    async def queues() -> list[dict[str, Any]]:
        return [{"id": f"q{i}", "required_skills": [f"skill{i}"]} for i in range(QUEUES)]

    return app


async def _users_and_sessions() -> list[tuple[str, str]]:
    """The users and their sessions, straight into the console's database; (user, cookie)."""
    from console.db.sessions import create_session
    from console.db.users import create_user
    from console.domain.users import hash_password

    one_hash = hash_password(uuid.uuid4().hex)  # nobody signs in with it
    engine = make_engine(database_url(DB), pool_size=1)
    found = []
    expires = datetime.now(UTC) + timedelta(hours=2)
    try:
        async with engine.begin() as conn:
            people = [(a, "agent") for a in _agents()]
            people += [(f"sup{i:03d}", "supervisor") for i in range(SUPERVISORS)]
            for user, role in people:
                await create_user(
                    conn,
                    user_id=user,
                    display_name=user,
                    role=role,
                    agent_id=user if role == "agent" else None,
                    password_hash=one_hash,
                )
                cookie = uuid.uuid4().hex + uuid.uuid4().hex
                await create_session(
                    conn,
                    cookie=cookie,
                    user_id=user,
                    csrf_token=uuid.uuid4().hex,
                    expires_at=expires,
                    address="127.0.0.1",
                )
                found.append((user, cookie))
    finally:
        await engine.dispose()
    return found


class Stream:
    """One browser's /live on a raw socket: the arrival time of each event it gets."""

    def __init__(self, user: str, cookie: str, received: dict[str, float]) -> None:
        self.user = user
        self.cookie = cookie
        self.received = received  # "<event id>|<user>" -> latency (s)
        self.last_id: str | None = None
        self.reconnects = 0
        self.reloads = 0
        self.opened = asyncio.Event()
        self.latencies: list[tuple[str, float]] = []  # (event id, latency)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
                await self._once()
            self.reconnects += 1
            await asyncio.sleep(0.5)

    async def _once(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        try:
            head = (
                f"GET /live HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
                f"Accept: text/event-stream\r\nCookie: cc_session={self.cookie}\r\n"
            )
            if self.last_id:
                head += f"Last-Event-ID: {self.last_id}\r\n"
            writer.write((head + "\r\n").encode())
            status = await reader.readline()
            if b" 200 " not in status:
                raise ValueError(status.decode(errors="replace"))
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            self.opened.set()
            pending = b""
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                arrived = time.time()
                pending += chunk[:-2]
                *frames, pending = pending.split(b"\n\n")
                for frame in frames:
                    self._take(frame, arrived)
        finally:
            writer.close()

    def _take(self, frame: bytes, arrived: float) -> None:
        data = None
        for line in frame.split(b"\n"):
            if line.startswith(b"id: "):
                self.last_id = line[4:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line == b"event: reload":
                self.reloads += 1
                return
        if data is None:
            return
        event = orjson.loads(data)
        published = datetime.fromisoformat(event["occurred_at"]).timestamp()
        latency = arrived - published
        self.latencies.append((event["id"], latency))
        self.received[f"{event['id']}|{self.user}"] = latency


async def _ceiling(latencies: dict[str, float], ready: asyncio.Event) -> None:
    """A bare consumer of the same topics: publish -> receive, for every event."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, [topic(t) for t in TOPICS])
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            arrived = time.time()
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value or b"{}")
                    published = datetime.fromisoformat(event["occurred_at"]).timestamp()
                    latencies[event["event_id"]] = arrived - published
    finally:
        await consumer.stop()


def _event(rng: random.Random, agents: list[str]) -> Any:
    now = datetime.now(UTC)
    ticket = uuid.uuid4()
    pick = rng.random()
    agent = rng.choice(agents) if agents else "agent000"  # no agents: all supervisors
    if pick < 0.4:
        return NotificationCreated(
            notification_id=uuid.uuid4(),
            recipient_id=agent,
            kind="new_offer",
            ticket_id=ticket,
            text="A ticket is offered to you",
            data={"offer_id": str(uuid.uuid4())},
            created_at=now,
        )
    if pick < 0.7:
        return TicketRouted(
            ticket_id=ticket,
            queue_id=f"q{rng.randrange(QUEUES)}",
            priority="normal",
            category="general",
            channel="chat",
            at=now,
        )
    if pick < 0.9:
        return TicketAssigned(
            ticket_id=ticket,
            agent_id=agent,
            owner_agent_id=agent,
            queue_id=f"q{_queue_of(agent)}",
            decision_id=uuid.uuid4(),
            strategy="longest_idle",
            at=now,
        )
    return SlaWarning(
        ticket_id=ticket,
        metric="first_response",
        policy_id="standard",
        policy_version=1,
        deadline=now + timedelta(minutes=5),
        share_elapsed=0.8,
        at=now,
    )


def _expected(payload: Any) -> int:
    """How many of the benchmark's streams may see the event (the console's rules)."""
    if isinstance(payload, NotificationCreated):
        return 1 if STREAMS > SUPERVISORS else 0
    per_queue = len([a for a in _agents() if _queue_of(a) == 0])
    if isinstance(payload, TicketRouted):
        return SUPERVISORS + per_queue
    if isinstance(payload, TicketAssigned):
        return SUPERVISORS + (1 if STREAMS > SUPERVISORS else 0)  # and the agent it names
    return SUPERVISORS


async def _publish(seconds: int, rate: float, published: set[str]) -> tuple[int, int]:
    producer = make_producer(KAFKA, "bench-console-live")
    await producer.start()
    rng = random.Random(19)  # a reproducible mix
    agents = _agents()
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = expected = 0
    try:
        while loop.time() - start < seconds:
            payload = _event(rng, agents)
            event = new_event(payload, producer="bench")
            await producer.send(
                topic(event.topic),
                event.to_bytes(),
                key=event.key.encode(),
                headers=[("event_type", event.event_type.encode())],
            )
            published.add(str(event.event_id))
            sent += 1
            expected += _expected(payload)
            delay = start + sent / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, expected


def _ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


async def _run(server: Any) -> dict[str, Any]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", ROUTER_PORT))
    router = uvicorn.Server(
        uvicorn.Config(_stand_in_router(), log_level="warning", access_log=False)
    )
    router_task = asyncio.create_task(router.serve(sockets=[sock]))
    while not router.started:  # noqa: ASYNC110 - uvicorn offers no event for it
        await asyncio.sleep(0.05)
    ceiling_by_id: dict[str, float] = {}
    published: set[str] = set()
    ceiling_ready = asyncio.Event()
    ceiling_task = asyncio.create_task(_ceiling(ceiling_by_id, ceiling_ready))
    received: dict[str, float] = {}
    users = await _users_and_sessions()
    streams = [Stream(user, cookie, received) for user, cookie in users]
    tasks = [asyncio.create_task(s.run()) for s in streams]
    try:
        connect_start = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 120)
        connected_s = time.monotonic() - connect_start
        await asyncio.wait_for(ceiling_ready.wait(), 30)
        await asyncio.sleep(2)  # the agents' queues fetched, the streams idle
        cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
        sent, expected = await _publish(SECONDS, RATE, published)
        await asyncio.sleep(3)  # the last events arrive
        cpu = server.cpu_seconds() - cpu_before
        wall = time.monotonic() - wall_before
        rss = server.rss_mb()
    finally:
        for task in [*tasks, ceiling_task]:
            task.cancel()
        await asyncio.gather(*tasks, ceiling_task, return_exceptions=True)
        router.should_exit = True
        with contextlib.suppress(Exception):
            await router_task
    # Only the benchmark's own events (nothing else should be on its topics, but a stray
    # publisher would otherwise count).
    latencies = [v for k, v in received.items() if k.split("|", 1)[0] in published]
    # Per delivery, its latency less the bare consumer's for the same event: the time the
    # console adds to Kafka's (the publisher's and the broker's share taken out).
    added = [
        v - ceiling_by_id[k.split("|", 1)[0]]
        for k, v in received.items()
        if k.split("|", 1)[0] in published and k.split("|", 1)[0] in ceiling_by_id
    ]
    ceiling = [v for k, v in ceiling_by_id.items() if k in published]
    per_stream = [[v for k, v in s.latencies if k in published] for s in streams]
    per_stream_p99 = [_ms(values, 0.99) for values in per_stream if values]
    console_p99 = _ms(latencies, 0.99)
    ceiling_p99 = _ms(ceiling, 0.99)
    return {
        "streams": len(streams),
        "agents": STREAMS - SUPERVISORS,
        "supervisors": SUPERVISORS,
        "queues": QUEUES,
        "rate_per_s": RATE,
        "seconds": SECONDS,
        "connect_all_s": round(connected_s, 2),
        "events_published": sent,
        "deliveries_expected": expected,
        "deliveries": len(latencies),
        "deliveries_per_s": round(len(latencies) / SECONDS, 1),
        "foreign_deliveries": len(received) - len(latencies),
        "latency_ms": {
            "p50": _ms(latencies, 0.50),
            "p90": _ms(latencies, 0.90),
            "p99": console_p99,
            "max": _ms(latencies, 1.0),
        },
        "per_stream_p99_ms": {
            "median": round(statistics.median(per_stream_p99), 1) if per_stream_p99 else None,
            "worst": max(per_stream_p99) if per_stream_p99 else None,
        },
        "ceiling_bare_consumer_ms": {
            "p50": _ms(ceiling, 0.50),
            "p99": ceiling_p99,
            "events": len(ceiling),
        },
        "console_added_ms": {"p50": _ms(added, 0.50), "p99": _ms(added, 0.99)},
        "p99_over_ceiling_p99": round(console_p99 / ceiling_p99, 2) if ceiling_p99 else None,
        "reconnects": sum(s.reconnects for s in streams),
        "reloads": sum(s.reloads for s in streams),
        "console_cpu_percent": round(100 * cpu / wall, 1),
        "console_rss_mb": round(rss, 1),
    }


def main(duration: int | None = None) -> None:
    global SECONDS
    if duration:
        SECONDS = duration
    recreate_database(DB)
    asyncio.run(ensure_topics(KAFKA, list(TOPICS), prefix=PREFIX, client_id="bench-console-live"))
    env = {
        "CC_DEVELOPMENT": "1",
        "CONSOLE_DATABASE_URL": database_url(DB),
        "CONSOLE_KAFKA_BOOTSTRAP": KAFKA,
        "CONSOLE_KAFKA_TOPIC_PREFIX": PREFIX,
        "CONSOLE_ROUTER_URL": f"http://127.0.0.1:{ROUTER_PORT}",
        "CONSOLE_LOG_LEVEL": "WARNING",
        "CONSOLE_DATABASE_POOL_SIZE": "20",
    }
    server = start_uvicorn("console", "console.app:create_app", PORT, 1, env, "/readyz")
    try:
        result = asyncio.run(_run(server))
    finally:
        server.stop()
    result["load_generator"] = (
        "this process: the streams on raw sockets (HTTP/1.1), the publisher and the bare "
        "consumer, on the same 2-core machine as the console"
    )
    result["target"] = f"{STREAMS} streams, p99 publish -> stream < {TARGET_P99_MS:.0f} ms"
    result["target_met"] = result["latency_ms"]["p99"] < TARGET_P99_MS
    path = write_result("console_live", result)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"written to {path}")
