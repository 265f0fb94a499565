"""SLA timers at scale: 1,000,000 pending timers in PostgreSQL, then timers falling due.

Measured against the SLA service running as a uvicorn process on its own database:
- lag: timers due one by one (every 5 ms) — p50/p99 from each breach deadline to its event's
  Kafka timestamp (fired by the scanner, published by the outbox relay);
- burst: many timers due at the same instant — events fired per second;
- the same lag run while another session holds a transaction open (vacuum is held back, so the
  rows the burst deleted stay in the due index);
- the service's RSS after each phase (it should not depend on the number of open timers).

Timers are inserted directly with generate_series (breach timers of `bench-*` policies), so the
numbers are the scanner's and relay's alone, not the consumer's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import (
    KAFKA,
    TOPIC_PREFIX,
    database_url,
    recreate_database,
    start_uvicorn,
    topic,
    write_result,
)
from ccshared.events.catalog import ROUTER_TICKETS, SLA_EVENTS
from ccshared.kafka import commit_group_at_end, ensure_topics

DB = "bench_sla"
PORT = 18103
OPEN_TIMERS = int(os.environ.get("BENCH_SLA_OPEN", "1000000"))
LAG_TIMERS = int(os.environ.get("BENCH_SLA_LAG", "2000"))
BURST_TIMERS = int(os.environ.get("BENCH_SLA_BURST", "100000"))

# Breach timers for tickets that need no row elsewhere; `tag` tells this run's events apart.
_INSERT = """
INSERT INTO sla_timers (key, ticket_id, shard, metric, cycle, kind, level, seq, due_at, payload)
SELECT t.id::text || ':resolution:1:breach:0', t.id, 0, 'resolution', 1, 'breach', 0, 0, t.due,
       jsonb_build_object('ticket_id', t.id::text, 'metric', 'resolution', 'policy_id', $4::text,
                          'policy_version', 1, 'deadline', t.due, '_cycle', 1)
FROM (SELECT gen_random_uuid() AS id,
             $1::timestamptz + (i * $2::float8) * interval '1 second' AS due
      FROM generate_series(0, $3::int - 1) AS i) AS t
"""


async def _insert(conn: asyncpg.Connection, start: float, step_s: float, n: int, tag: str) -> None:
    await conn.execute(_INSERT, _at(start), step_s, n, tag)


def _at(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


class Tail:
    """sla.events from now on: (deadline, kafka timestamp) per event of a tag."""

    def __init__(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
        self.seen: dict[str, list[tuple[float, float]]] = {}

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic(SLA_EVENTS), p)
            for p in self.consumer.partitions_for_topic(topic(SLA_EVENTS)) or ()
        ]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)

    async def collect(self, tag: str, count: int, timeout_s: float) -> list[tuple[float, float]]:
        from datetime import datetime

        end = time.monotonic() + timeout_s
        while len(self.seen.get(tag, [])) < count and time.monotonic() < end:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batch.values():
                for r in records:
                    payload = orjson.loads(r.value)["payload"]
                    if "deadline" not in payload:
                        continue  # an escalation from another run
                    deadline = datetime.fromisoformat(payload["deadline"]).timestamp()
                    self.seen.setdefault(payload["policy_id"], []).append(
                        (deadline, r.timestamp / 1000)
                    )
        return self.seen.get(tag, [])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _lag_run(conn: asyncpg.Connection, tail: Tail, tag: str) -> dict[str, Any]:
    start = time.time() + 2
    await _insert(conn, start, 0.005, LAG_TIMERS, tag)
    seen = await tail.collect(tag, LAG_TIMERS, timeout_s=LAG_TIMERS * 0.005 + 60)
    lags = [ts - deadline for deadline, ts in seen]
    return {
        "timers": LAG_TIMERS,
        "events": len(seen),
        "lag_p50_ms": round(statistics.median(lags) * 1000, 1),
        "lag_p99_ms": round(_percentile(lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1),
    }


async def _burst_run(conn: asyncpg.Connection, tail: Tail, tag: str) -> dict[str, Any]:
    due = time.time() + 5
    await _insert(conn, due, 0.0, BURST_TIMERS, tag)
    seen = await tail.collect(tag, BURST_TIMERS, timeout_s=600)
    last = max(ts for _, ts in seen)
    return {
        "timers": BURST_TIMERS,
        "events": len(seen),
        "seconds_to_last_event": round(last - due, 2),
        "fired_per_s": round(len(seen) / max(last - due, 1e-3)),
    }


async def _run(server_rss: Any) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
    tail = Tail()
    await tail.start()
    run = uuid.uuid4().hex[:6]
    try:
        began = time.time()
        far = time.time() + 86_400
        for offset in range(0, OPEN_TIMERS, 250_000):  # due over the next 30 days
            n = min(250_000, OPEN_TIMERS - offset)
            await _insert(conn, far + offset * 2.5, 2.5, n, f"open-{run}")
        await conn.execute("VACUUM ANALYZE sla_timers")
        result: dict[str, Any] = {
            "open_timers": OPEN_TIMERS,
            "insert_s": round(time.time() - began, 1),
            "rss_mb_with_open_timers": round(server_rss(), 1),
        }
        result["lag"] = await _lag_run(conn, tail, f"lag-{run}")
        result["burst"] = await _burst_run(conn, tail, f"burst-{run}")
        result["rss_mb_after_burst"] = round(server_rss(), 1)

        # A transaction held open elsewhere keeps every row deleted from now on in the table
        # and its index: the scan has to step over them.
        holder = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
        try:
            await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            await holder.fetchval("SELECT count(*) FROM fired_timers")
            result["burst_long_tx"] = await _burst_run(conn, tail, f"burst2-{run}")
            result["lag_long_tx"] = await _lag_run(conn, tail, f"lag2-{run}")
            await holder.execute("ROLLBACK")
        finally:
            await holder.close()
        result["rss_mb_end"] = round(server_rss(), 1)
        return result
    finally:
        await tail.consumer.stop()
        await conn.close()


async def _prepare(service_name: str) -> None:
    await ensure_topics(KAFKA, prefix=TOPIC_PREFIX)
    await commit_group_at_end(KAFKA, f"{service_name}.ticket-clocks", [topic(ROUTER_TICKETS)])


def main(duration: int | None = None) -> None:
    del duration  # the phases run to completion
    recreate_database(DB)
    service_name = "sla-bench"
    asyncio.run(_prepare(service_name))
    env = {
        "SLA_DATABASE_URL": database_url(DB),
        "SLA_KAFKA_BOOTSTRAP": KAFKA,
        "SLA_SERVICE_NAME": service_name,
        "SLA_LOG_LEVEL": "WARNING",
    }
    server = start_uvicorn("sla", "sla.app:create_app", PORT, 1, env, "/readyz")
    try:
        result = asyncio.run(_run(server.rss_mb))
    finally:
        server.stop()
    path = write_result("sla", result)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"written to {path}")
