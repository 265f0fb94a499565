"""Scaling out on this machine: one replica, then two, of the router and of the SLA service
draining the same backlog, and two with one killed mid-run.

For each service and each phase, the replicas (uvicorn processes, one worker each, one consumer
group, one database) start on fresh topics (a topic prefix of the phase's own, 6 partitions, as
the services create them); once they have split the partitions between them, a backlog of
events is put on the topic at once, and they drain it:
- `one`: one replica;
- `two`: two replicas, which split the partitions (each replica's `/metrics` says which it holds,
  by `cc_consumer_lag`'s partition label, scraped mid-run);
- `two, one killed`: two replicas, one SIGKILLed once a third of the backlog is done; the other
  takes its partitions when the group coordinator gives up on it (the session timeout, 30 s).

The drain rate is the group's own clock: events processed over the time from the first
processed_events row of the group to the last. Nothing lost: every event of the backlog has its
processed_events row (each once: it is the primary key) and its effect (router: a ticket contact
per contact; SLA: a tracked ticket per ticket.opened), counted against the backlog.

Run on request (`python -m bench scale`): about three minutes. The machine is two cores shared
with the database, the broker and the load of anyone else on it: two replicas gain only what the
first one left idle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from bench.harness import (
    KAFKA,
    Server,
    database_url,
    recreate_database_async,
    start_uvicorn,
    write_result,
)
from ccshared.events import new_event
from ccshared.events.catalog import INTAKE_CONTACTS, ROUTER_TICKETS, TOPICS
from ccshared.events.payloads import ContactReceived, CustomerHints, TicketOpened
from ccshared.kafka import ensure_topics, make_producer

BACKLOG = {
    "router": int(os.environ.get("BENCH_SCALE_ROUTER_BACKLOG", "20000")),
    "sla": int(os.environ.get("BENCH_SCALE_SLA_BACKLOG", "20000")),
}
PORT = 18301
PARTITIONS = 6
PHASES = (("one", 1, False), ("two", 2, False), ("two, one killed", 2, True))
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Service:
    name: str  # the package, and the settings' prefix in lower case
    topic: str  # the topic of the backlog
    group: str  # the ConsumerSpec name that drains it
    effect: str  # counts the backlog's effects in the service's database

    def event(self, n: int, run: str) -> BaseModel:
        now = datetime.now(UTC)
        if self.name == "router":
            return ContactReceived(
                contact_id=uuid.uuid4(),
                customer_id=uuid.uuid4(),
                channel="chat",
                external_id=f"scale-{run}-{n}",
                received_at=now,
                text="Hello, my order has not arrived yet, can you check?",
                language="en",
                customer=CustomerHints(email=f"scale-{run}-{n}@example.com"),
            )
        return TicketOpened(
            ticket_id=uuid.uuid4(),
            customer_id=uuid.uuid4(),
            channel="chat",
            category="delivery",
            priority="normal",
            opened_at=now,
            received_at=now,
        )


SERVICES = (
    Service("router", INTAKE_CONTACTS, "contacts", "SELECT count(*) FROM ticket_contacts"),
    Service("sla", ROUTER_TICKETS, "ticket-clocks", "SELECT count(*) FROM sla_tickets"),
)


async def _backlog(service: Service, prefix: str, count: int, run: str) -> None:
    await ensure_topics(KAFKA, prefix=prefix, partitions=PARTITIONS)
    producer = make_producer(KAFKA, "bench-scale")
    await producer.start()
    try:
        sent = []
        for n in range(count):
            event = new_event(service.event(n, run), producer="bench")
            sent.append(
                await producer.send(
                    prefix + service.topic,
                    event.to_bytes(),
                    key=event.key.encode(),
                    headers=[("event_type", event.event_type.encode())],
                )
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _drop_topics(prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        names = [prefix + t for t in TOPICS] + [prefix + t + ".dlq" for t in TOPICS]
        await admin.delete_topics(names)
    except Exception as exc:  # noqa: BLE001 - leftovers are only clutter
        print(f"  (deleting {prefix}* failed: {exc})")
    finally:
        await admin.close()


def _start(service: Service, replicas: int, db: str, prefix: str, suffix: str) -> list[Server]:
    upper = service.name.upper()
    env = {
        # A group of the phase's own: other runs' services on this broker share no group with it.
        f"{upper}_CONSUMER_GROUP_SUFFIX": suffix,
        f"{upper}_DATABASE_URL": database_url(db),
        f"{upper}_KAFKA_BOOTSTRAP": KAFKA,
        f"{upper}_KAFKA_TOPIC_PREFIX": prefix,
        f"{upper}_LOG_LEVEL": "WARNING",
        f"{upper}_TOPIC_PARTITIONS": str(PARTITIONS),
    }
    with ThreadPoolExecutor(replicas) as pool:  # at once: neither starts with a head start
        starting = [
            pool.submit(
                start_uvicorn,
                f"scale-{service.name}-{n}",
                f"{service.name}.app:create_app",
                PORT + n,
                1,
                env,
                "/healthz",
            )
            for n in range(replicas)
        ]
        return [s.result() for s in starting]


async def _partitions_held(servers: list[Server], group: str) -> list[list[int]]:
    """Per replica, the partitions of the group it reports lag for on /metrics."""
    held: list[list[int]] = []
    async with httpx.AsyncClient(timeout=5) as client:
        for server in servers:
            try:
                text = (await client.get(f"http://127.0.0.1:{server.port}/metrics")).text
            except httpx.HTTPError:
                held.append([])
                continue
            held.append(
                sorted(
                    int(s.labels["partition"])
                    for family in text_string_to_metric_families(text)
                    if family.name == "cc_consumer_lag"
                    for s in family.samples
                    if s.labels["group"] == group
                )
            )
    return held


async def _split(servers: list[Server], group: str) -> list[list[int]]:
    """Once every replica holds partitions of the group and together they hold all of them."""
    end = time.monotonic() + 120
    while True:
        held = await _partitions_held(servers, group)
        everything = sorted(p for partitions in held for p in partitions)
        if all(held) and everything == list(range(PARTITIONS)):
            return held
        if time.monotonic() > end:
            raise RuntimeError(f"the replicas did not split the partitions: {held}")
        await asyncio.sleep(0.5)


async def _phase(service: Service, label: str, replicas: int, kill: bool) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    prefix = f"scale-{run}."
    db = f"bench_scale_{service.name}"
    count = BACKLOG[service.name]
    await recreate_database_async(db)
    await ensure_topics(KAFKA, prefix=prefix, partitions=PARTITIONS)
    suffix = f".scale-{run}"
    group = f"{service.name}.{service.group}{suffix}"
    conn = None
    servers = await asyncio.to_thread(_start, service, replicas, db, prefix, suffix)
    try:
        split = await _split(servers, group)
        await _backlog(service, prefix, count, run)
        conn = await asyncpg.connect(database_url(db).replace("+asyncpg", ""))
        began = time.monotonic()
        done, done_at_kill = 0, 0
        killed_at: float | None = None
        taken_over_s: float | None = None
        while done < count and time.monotonic() - began < TIMEOUT_S:
            await asyncio.sleep(0.25)
            done = int(
                await conn.fetchval(
                    "SELECT count(*) FROM processed_events WHERE consumer = $1", group
                )
            )
            if kill and killed_at is None and done >= count // 3:
                os.killpg(servers[0].process.pid, signal.SIGKILL)
                servers[0].process.wait()
                killed_at, done_at_kill = time.monotonic(), done
                print(f"  killed replica 0 at {done}/{count}", flush=True)
            if killed_at is not None and taken_over_s is None and done > done_at_kill:
                survivor = await _partitions_held(servers[1:], group)
                if survivor and len(survivor[0]) == PARTITIONS:
                    taken_over_s = round(time.monotonic() - killed_at, 1)
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT event_id) AS distinct_n, "
            "extract(epoch FROM max(processed_at) - min(processed_at)) AS seconds "
            "FROM processed_events WHERE consumer = $1",
            group,
        )
        effects = int(await conn.fetchval(service.effect))
    finally:
        if conn is not None:
            await conn.close()
        for server in servers:
            server.stop()
        await _drop_topics(prefix)
    seconds = float(row["seconds"] or 0.0)
    result: dict[str, Any] = {
        "phase": label,
        "replicas": replicas,
        "backlog": count,
        "processed": int(row["n"]),
        "distinct": int(row["distinct_n"]),
        "effects": effects,
        "lost": count - int(row["distinct_n"]),
        "seconds": round(seconds, 1),
        "per_s": round(int(row["n"]) / seconds) if seconds else None,
    }
    result["partitions_held"] = split
    if kill:
        result["taken_over_after_s"] = taken_over_s
    print(f"  {service.name} {label}: {orjson.dumps(result).decode()}", flush=True)
    return result


async def _run() -> dict[str, Any]:
    # BENCH_SCALE_SERVICES=sla (or router): only those services' phases.
    wanted = os.environ.get("BENCH_SCALE_SERVICES", "").split(",")
    return {
        service.name: [await _phase(service, *phase) for phase in PHASES]
        for service in SERVICES
        if wanted == [""] or service.name in wanted
    }


def main(duration: int | None = None) -> None:
    del duration  # each phase drains its backlog to the end
    result = asyncio.run(_run())
    for name, phases in result.items():
        one = phases[0]["per_s"] or 0
        for phase in phases:
            speedup = f"{phase['per_s'] / one:.2f}x" if one and phase["per_s"] else "-"
            print(
                f"{name:<7}{phase['phase']:<18}{phase['per_s'] or 0:>7}/s {speedup:>6}  "
                f"lost {phase['lost']}, effects {phase['effects']}/{phase['backlog']}"
            )
    # One service's phases alone do not replace the figures of both.
    name = "scale" if set(result) == {s.name for s in SERVICES} else "scale-" + "-".join(result)
    print(f"written to {write_result(name, result)}")
