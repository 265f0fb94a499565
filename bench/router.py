"""Router: contacts routed and assigned per second, and p50/p99 from `POST /v1/contacts` to the
assignment event, with 300 agents over the six default queues at a steady offered load; then
the router's own throughput draining a backlog, beside a consumer that reads the same messages
and does nothing (the ceiling); and how many tickets breach their SLA with the breach
prediction and without, same arrivals, same run (`bench/router_breach.py`).

Load generator: an open-loop raw asyncio HTTP/1.1 client (bench/loadgen.py) at a fixed rate.
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
import orjson
from aiokafka import AIOKafkaConsumer

from bench import classification as bench_classification
from bench import router_breach
from bench.harness import (
    KAFKA,
    cpu_by_part,
    create_bench_key,
    database_url,
    recreate_database_async,
    start_groups_at_end,
    start_uvicorn,
    supervisor_headers,
    topic,
    write_result,
)
from bench.loadgen import RawHttpClient, open_loop
from ccshared.events import decode_event
from ccshared.events.catalog import INTAKE_CONTACTS, ROUTER_TICKETS
from ccshared.events.payloads import ContactReceived, TicketAssigned, TicketOpened
from ccshared.kafka import commit_group_at_end, topic_partitions

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
        # Where the time goes, on the wall clock the services stamp their events with:
        # ticket opened (router consumer) and offer made (assigner), per ticket.
        self.opened_wall: dict[str, float] = {}
        self.offered_wall: dict[str, float] = {}
        # contact → when intake's relay handed it to Kafka (the record's CreateTime).
        self.published_wall: dict[str, float] = {}
        self.consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        tps = await topic_partitions(self.consumer, [topic(ROUTER_TICKETS), topic(INTAKE_CONTACTS)])
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
                    kind = dict(record.headers or ()).get("event_type")
                    if kind == b"contact.received":
                        contact_id = orjson.loads(record.value)["payload"]["contact_id"]
                        self.published_wall[contact_id] = record.timestamp / 1000
                        continue
                    if kind not in (b"ticket.opened", b"ticket.assigned"):
                        continue  # the tail's CPU is the machine's: decode only what it needs
                    envelope, payload = decode_event(record.value)
                    if isinstance(payload, TicketOpened) and payload.contact_id:
                        self.ticket_of_contact[str(payload.contact_id)] = str(payload.ticket_id)
                        self.opened_wall[str(payload.ticket_id)] = payload.opened_at.timestamp()
                    elif isinstance(payload, TicketAssigned):
                        self.assigned_at.setdefault(str(payload.ticket_id), now)
                        self.offered_wall.setdefault(
                            str(payload.ticket_id), envelope.occurred_at.timestamp()
                        )

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
                    # Agents never finish work here: room for every ticket of the run.
                    "capacity": {"phone": 50, "chat": 50, "email": 50, "social": 50},
                },
            )
            created.raise_for_status()
            status = await client.put(f"/v1/agents/{agent}/status", json={"status": "available"})
            status.raise_for_status()
    return await create_bench_key(intake_db.rsplit("/", 1)[1])


async def _steady_load(intake_url: str, key: str, seconds: int, run: str) -> dict[str, float]:
    sent: dict[str, float] = {}
    errors = 0
    host, port = intake_url.removeprefix("http://").split(":")
    async with RawHttpClient(
        host, int(port), headers={"Authorization": f"Bearer {key}"}, connections=64
    ) as client:

        async def post(n: int, started: float) -> None:
            nonlocal errors
            try:
                response = await client.post("/v1/contacts", _contact(n, run))
            except OSError:
                errors += 1
                return
            if response.status == 202:
                sent[response.json()["id"]] = started
            else:
                errors += 1

        lag = await open_loop(RATE, RATE * seconds, post)
    return sent | {"__errors__": float(errors), "__lag__": lag}


# Intake in front of the router: one worker takes 500 contacts/s with room to spare (it accepts
# several thousand a second); a second one costs CPU the router then lacks (two relays, two
# ticket-link consumers, group commits of one or two contacts each).
INTAKE_WORKERS = int(os.environ.get("BENCH_INTAKE_WORKERS", "1"))


def _router_env(router_db: str, suffix: str) -> dict[str, str]:
    return {
        "ROUTER_DATABASE_URL": router_db,
        "ROUTER_KAFKA_BOOTSTRAP": KAFKA,
        "ROUTER_CONSUMER_GROUP_SUFFIX": suffix,
        "ROUTER_LOG_LEVEL": "WARNING",
        # The simulated agents never answer their offers: one timing out must not send them
        # away (the default) and leave the drain without agents.
        "ROUTER_MISSED_OFFER_STATUS": "available",
    }


async def _drain_rate(router_db: str, intake_url: str, key: str, suffix: str) -> dict[str, float]:
    """Router throughput on a backlog, and a no-op consumer's on the same messages."""
    await start_groups_at_end(suffix)  # every router group, not only contacts: no replays
    await commit_group_at_end(KAFKA, f"noop{suffix}", [topic(INTAKE_CONTACTS)])
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
        topic(INTAKE_CONTACTS),
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

    conn = await asyncpg.connect(router_db.replace("+asyncpg", ""))
    try:
        # Counted before the router starts: it may drain much of the backlog while it is
        # still becoming ready.
        base = int(await conn.fetchval("SELECT count(*) FROM ticket_contacts"))
        base_history = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM ticket_history"))
        router = start_uvicorn(
            "router-drain",
            "router.app:create_app",
            18202,
            1,
            _router_env(router_db, suffix),
            "/healthz",
        )
        try:
            started, done = time.perf_counter(), 0
            while done < BACKLOG and time.perf_counter() - started < 300:
                await asyncio.sleep(0.2)
                done = int(await conn.fetchval("SELECT count(*) FROM ticket_contacts")) - base
        finally:
            router.stop()
        # The router's own clock: from the first contact it handled to the last (each is an
        # `open` or `contact` history row written as it is handled).
        elapsed = float(
            await conn.fetchval(
                "SELECT extract(epoch FROM max(at) - min(at)) FROM ticket_history "
                "WHERE id > $1 AND action IN ('open', 'contact')",
                base_history,
            )
            or 0.0
        )
    finally:
        await conn.close()
    return {
        "router_drain_per_s": done / elapsed if elapsed else 0.0,
        "noop_consumer_per_s": noop_rate,
        "backlog": BACKLOG,
    }


async def _run(seconds: int) -> dict[str, Any]:
    suffix = f".bench-{uuid.uuid4().hex[:6]}"
    for db in ("bench_router_intake", "bench_router"):
        await recreate_database_async(db)
    # Every group at the end of its topics: the router must not spend the run replaying the
    # SLA and feedback events of earlier runs.
    await start_groups_at_end(suffix)
    intake_db, router_db = database_url("bench_router_intake"), database_url("bench_router")
    intake = start_uvicorn(
        "intake-r",
        "intake.app:create_app",
        18201,
        INTAKE_WORKERS,
        {
            "INTAKE_DATABASE_URL": intake_db,
            "INTAKE_KAFKA_BOOTSTRAP": KAFKA,
            "INTAKE_WORKERS": str(INTAKE_WORKERS),
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
        _router_env(router_db, suffix),
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
        servers = {"router": router, "intake": intake}
        cpu0, machine0, parts0 = router.cpu_seconds(), _machine_ticks(), cpu_by_part(servers)
        sent = await _steady_load("http://127.0.0.1:18201", key, seconds, uuid.uuid4().hex[:6])
        machine1, parts1 = _machine_ticks(), cpu_by_part(servers)
        errors = int(sent.pop("__errors__"))
        lag = sent.pop("__lag__")
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
    stages = _stages(sent, tail)
    drain = await _drain_rate(router_db, "http://127.0.0.1:18201", key, suffix + "d")

    def pct(p: float) -> float:
        return _pct(latencies, p)

    return {
        "load_generator": f"open-loop raw asyncio HTTP/1.1 client (bench/loadgen.py), {RATE} "
        f"contacts/s for {seconds} s; last request {lag * 1000:.0f} ms behind schedule",
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
        "stages_ms": stages,
        "machine_cpu_busy_during_load": round(
            1 - (machine1[1] - machine0[1]) / max(1, machine1[0] - machine0[0]), 3
        ),
        "router_cpu_s_per_1k": round(1000 * router_cpu / max(1, len(sent)), 3),
        # Where the machine's CPU went while the load ran, in seconds per 1,000 contacts.
        "cpu_s_per_1k_during_load": {
            part: round(
                1000 * (parts1.get(part, 0.0) - parts0.get(part, 0.0)) / max(1, len(sent)), 3
            )
            for part in parts1
        },
        "router_rss_mb": round(router_rss, 1),
        **{k: round(v, 1) for k, v in drain.items()},
        "drain_ratio_to_noop": round(drain["router_drain_per_s"] / drain["noop_consumer_per_s"], 3)
        if drain["noop_consumer_per_s"]
        else None,
        "target": "p99 < 250 ms at 500 contacts/s; router drain >= 0.5 x no-op consumer",
    }


def _machine_ticks() -> tuple[int, int]:
    """(all, idle) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]  # noqa: SIM115
    return sum(fields), fields[3] + fields[4]


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


def _stages(sent: dict[str, float], tail: Tail) -> dict[str, dict[str, float]]:
    """p50/p99 of each leg, on the wall clock the services stamp events with: POST sent →
    contact on Kafka (intake and its relay) → ticket opened (the router's consumer) → offer
    made (the assigner) → the assignment event read here (the router's relay and Kafka)."""
    offset = time.time() - time.perf_counter()
    legs: dict[str, list[float]] = {
        "post_to_kafka": [],
        "kafka_to_opened": [],
        "post_to_opened": [],
        "opened_to_offer": [],
        "offer_to_event": [],
    }
    for contact_id, started in sent.items():
        ticket = tail.ticket_of_contact.get(contact_id)
        if ticket is None:
            continue
        opened = tail.opened_wall[ticket]
        legs["post_to_opened"].append((opened - (started + offset)) * 1000)
        published = tail.published_wall.get(contact_id)
        if published is not None:
            legs["post_to_kafka"].append((published - (started + offset)) * 1000)
            legs["kafka_to_opened"].append((opened - published) * 1000)
        if ticket not in tail.offered_wall or ticket not in tail.assigned_at:
            continue
        offered = tail.offered_wall[ticket]
        legs["opened_to_offer"].append((offered - opened) * 1000)
        legs["offer_to_event"].append((tail.assigned_at[ticket] + offset - offered) * 1000)
    result = {}
    for name, values in legs.items():
        values.sort()
        result[name] = {"p50": round(_pct(values, 0.5), 1), "p99": round(_pct(values, 0.99), 1)}
    return result


def main(duration: int | None = None) -> None:
    seconds = duration or int(os.environ.get("BENCH_SECONDS", "10"))
    classification = bench_classification.measure()  # first, on a quiet machine
    print(bench_classification.report(classification))
    result = asyncio.run(_run(seconds))
    result["classification"] = classification
    # Breaches with the breach prediction and without: same arrivals, same run, after the load.
    result["breaches"] = asyncio.run(router_breach.compare())
    result["latency_target_met"] = (
        result["post_to_assignment_ms"]["p99"] < 250 and result["assigned"] == result["posted"]
    )
    result["drain_target_met"] = (result["drain_ratio_to_noop"] or 0) >= 0.5
    result["target_met"] = result["latency_target_met"] and result["drain_target_met"]
    path = write_result("router", result)
    print(f"\nrouter benchmark ({AGENTS} agents, {RATE}/s offered for {seconds} s)")
    print(
        f"posted {result['posted']} (errors {result['post_errors']}), assigned "
        f"{result['assigned']}; POST→assignment p50 {result['post_to_assignment_ms']['p50']} ms, "
        f"p99 {result['post_to_assignment_ms']['p99']} ms (target p99 < 250 ms: "
        f"{'met' if result['latency_target_met'] else 'not met'})"
    )
    print(
        "  legs (p50/p99 ms): "
        + ", ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in result["stages_ms"].items())
    )
    print(
        f"  machine CPU busy {result['machine_cpu_busy_during_load']:.0%} during the load; CPU s "
        "per 1,000 contacts: "
        + ", ".join(f"{k} {v}" for k, v in result["cpu_s_per_1k_during_load"].items())
    )
    print(
        f"backlog of {result['backlog']:.0f}: router {result['router_drain_per_s']}/s vs no-op "
        f"consumer {result['noop_consumer_per_s']}/s (ratio {result['drain_ratio_to_noop']}, "
        f"target >= 0.5: {'met' if result['drain_target_met'] else 'not met'}); written to {path}"
    )
    print(router_breach.describe(result["breaches"]))
