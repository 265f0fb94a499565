"""Assembles the SLA service's own parts at start-up (`SlaParts`: the policy and calendar cache,
the ticket tracker, the timer scanner and its asyncpg pool) and takes them down at stop.
Endpoints and consumers reach them through `parts_of`, typed."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ccshared.db import asyncpg_dsn
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.service import Runtime
from sla.db.config import ConfigCache, seed_defaults
from sla.db.tracking import TicketTracker
from sla.settings import SLASettings
from sla.tasks.scanner import TimerScanner


@dataclass(frozen=True)
class SlaParts:
    configs: ConfigCache
    tracker: TicketTracker
    scanner: TimerScanner
    pool: asyncpg.Pool


def parts_of(runtime: Runtime) -> SlaParts:
    """The running service's parts (set by `start`)."""
    parts = runtime.parts
    if not isinstance(parts, SlaParts):
        raise RuntimeError("the SLA service has not started")
    return parts


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


async def start(runtime: Runtime, settings: SLASettings) -> None:
    async with runtime.engine.begin() as conn:
        await seed_defaults(conn)
    configs = ConfigCache(settings.config_cache_s)
    # The scanner is the hot path: plain asyncpg, a handful of statements per batch.
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url.get_secret_value()),
        min_size=1,
        max_size=settings.timer_pool_size,
        server_settings={"application_name": f"{settings.service_name}-timers"},
        reset=_keep_session,  # the scanner never changes session state
    )
    # The ticket-clocks consumer's topic: its partitions are the timers' shards.
    clock_topics = [settings.kafka_topic_prefix + ROUTER_TICKETS]

    def owned_shards() -> list[int] | None:
        consumer = next((c for c in runtime.consumers if c.topics == clock_topics), None)
        assignment = consumer.assignment() if consumer is not None else None
        if consumer is None or assignment is None:
            return None
        topic = clock_topics[0]
        if consumer.partition_count(topic) != settings.topic_partitions:
            # Timers are sharded by SLA_TOPIC_PARTITIONS; if the topic has another count,
            # partitions and shards do not line up: fire everything (still exactly once).
            return None
        return sorted(tp.partition for tp in assignment if tp.topic == topic)

    scanner = TimerScanner(
        pool,
        batch_size=settings.timer_batch_size,
        poll_interval_s=settings.timer_poll_interval_s,
        owned_shards=owned_shards,
    )
    scanner.start()
    runtime.parts = SlaParts(
        configs=configs,
        tracker=TicketTracker(configs, settings.topic_partitions),
        scanner=scanner,
        pool=pool,
    )


async def stop(runtime: Runtime, settings: SLASettings) -> None:
    parts = parts_of(runtime)
    await parts.scanner.stop(settings.shutdown_grace_s)
    await parts.pool.close()
