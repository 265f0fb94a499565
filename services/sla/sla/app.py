"""Builds the SLA service's app; nothing runs at import time."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from ccshared.db import asyncpg_dsn
from ccshared.service import Runtime, create_service_app
from sla.api.calendars import router as calendars_router
from sla.api.endpoints import router as sla_router
from sla.api.policies import router as policies_router
from sla.consumers.tickets import TICKET_CLOCKS
from sla.db.config import ConfigCache, seed_defaults
from sla.scanner import TimerScanner
from sla.settings import SLASettings
from sla.tracking import TicketTracker


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


def create_app(settings: SLASettings | None = None) -> FastAPI:
    settings = settings or SLASettings()

    async def on_start(runtime: Runtime) -> None:
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

        clock_topics = [settings.kafka_topic_prefix + t for t in TICKET_CLOCKS.topics]

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
        runtime.extras.update(
            configs=configs,
            tracker=TicketTracker(configs, settings.topic_partitions),
            pool=pool,
            scanner=scanner,
        )

    async def on_stop(runtime: Runtime) -> None:
        await runtime.extras["scanner"].stop(settings.shutdown_grace_s)
        await runtime.extras["pool"].close()

    return create_service_app(
        settings,
        title="Contact center — SLA",
        description=(
            "Tracks every service-level deadline of every open ticket and escalates what is "
            "overdue: SLA policies (versioned), business calendars, each ticket's deadlines and "
            "timeline, the at-risk list and attainment. Warnings, breaches, escalations and "
            "met targets are published on `sla.events`."
        ),
        package="sla",
        routers=[sla_router, policies_router, calendars_router],
        consumers=[TICKET_CLOCKS],
        on_start=on_start,
        on_stop=on_stop,
    )
