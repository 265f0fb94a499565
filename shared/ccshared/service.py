"""Builds a service's FastAPI app and runs its background parts for the app's lifetime.

Start-up: logging, database engine, migrations (shared + the service's), Kafka topics, the outbox
relay, the consumers. Shut-down, in reverse: stop taking new work, let consumers and the relay
finish what is in flight, close the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.consumer import BatchHandler, Handler, IdempotentConsumer
from ccshared.db import asyncpg_dsn, load_migrations, make_engine, migrate, shared_migrations
from ccshared.dlq import HANDLED_GROUP, DeadLetterWatch
from ccshared.events import Envelope
from ccshared.events.catalog import DLQ_SUFFIX
from ccshared.gc import freeze_startup_objects, tune_gc
from ccshared.health import Readiness, database_check, health_router, kafka_check
from ccshared.http import BodySizeLimitMiddleware, CorrelationIdMiddleware
from ccshared.kafka import ensure_topics, make_producer
from ccshared.logging import configure_logging
from ccshared.outbox import OutboxRelay
from ccshared.problems import ProblemDetails, install_problem_handlers
from ccshared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group of the service: its topics and its handler."""

    name: str
    topics: Sequence[str]
    handler: Callable[[Runtime], Handler]
    event_types: frozenset[str] | None = None  # None: every event on the topics
    after_commit: Callable[[Runtime], Callable[[Envelope], None]] | None = None
    # Optional: the whole fetched batch at once (see IdempotentConsumer.batch_handler).
    batch_handler: Callable[[Runtime], BatchHandler] | None = None


@dataclass
class Runtime:
    """Everything a running service holds; handlers and endpoints reach it via app.state."""

    settings: ServiceSettings
    engine: AsyncEngine
    relay: OutboxRelay
    readiness: Readiness
    consumers: list[IdempotentConsumer] = field(default_factory=list)
    kafka_connected: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    dead_letters: DeadLetterWatch | None = None


async def _retry_until(
    what: str, attempt: Callable[[], Awaitable[Any]], deadline_s: float | None
) -> Any:
    """Retry with backoff until it works or the deadline (None: forever) passes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s if deadline_s is not None else float("inf")
    delay = 0.5
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if loop.time() + delay > end:
                raise
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    package: str,
    routers: Sequence[APIRouter] = (),
    consumers: Sequence[ConsumerSpec] = (),
    max_body_bytes: int = 1024 * 1024,
    on_start: Callable[[Runtime], Awaitable[None]] | None = None,
    on_stop: Callable[[Runtime], Awaitable[None]] | None = None,
    startup_deadline_s: float = 60.0,
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    """The one way a service is assembled, so all four behave alike."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        tune_gc(settings.gc_gen0_threshold)
        url = settings.database_url.get_secret_value()
        engine = make_engine(
            url, pool_size=settings.database_pool_size, app_name=settings.service_name
        )
        migrations = shared_migrations() + load_migrations(settings.service_name, package)
        await _retry_until("migrations", lambda: migrate(engine, migrations), startup_deadline_s)

        def producer() -> Any:
            return make_producer(settings.kafka_bootstrap, settings.client_id)

        relay = OutboxRelay(
            asyncpg_dsn(url),
            producer,
            name=f"{settings.service_name}-outbox",
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            linger_s=settings.outbox_linger_s,
            vacuum_every=settings.outbox_vacuum_every,
            topic_prefix=settings.kafka_topic_prefix,
        )
        readiness: Readiness = app.state.readiness
        runtime = Runtime(settings, engine, relay, readiness)
        if on_start is not None:
            await on_start(runtime)
        relay.start()

        async def connect_kafka() -> None:
            # In the background: a service whose Kafka is down still starts and, through the
            # outbox, still accepts work; it reports not ready until this has finished.
            await _retry_until(
                "topic provisioning",
                lambda: ensure_topics(
                    settings.kafka_bootstrap,
                    partitions=settings.topic_partitions,
                    prefix=settings.kafka_topic_prefix,
                    replication_factor=settings.topic_replication_factor,
                    min_insync_replicas=settings.topic_min_insync_replicas,
                ),
                None,
            )
            for spec in consumers:
                consumer = IdempotentConsumer(
                    engine=engine,
                    bootstrap=settings.kafka_bootstrap,
                    group_id=f"{settings.service_name}.{spec.name}{settings.consumer_group_suffix}",
                    topics=[settings.kafka_topic_prefix + t for t in spec.topics],
                    handler=spec.handler(runtime),
                    producer_factory=producer,
                    client_id=f"{settings.client_id}.{spec.name}",
                    max_attempts=settings.consumer_max_attempts,
                    max_batch=settings.consumer_max_batch,
                    retry_base_s=settings.consumer_retry_base_s,
                    event_types=spec.event_types,
                    after_commit=spec.after_commit(runtime) if spec.after_commit else None,
                    offset_reset=settings.consumer_offset_reset,
                    batch_handler=spec.batch_handler(runtime) if spec.batch_handler else None,
                )
                await _retry_until(f"consumer {spec.name}", consumer.start, None)
                runtime.consumers.append(consumer)
            if consumers:
                prefix = settings.kafka_topic_prefix
                runtime.dead_letters = DeadLetterWatch(
                    settings.kafka_bootstrap,
                    sorted({prefix + t + DLQ_SUFFIX for spec in consumers for t in spec.topics}),
                    interval_s=settings.dlq_check_interval_s,
                    group=prefix + HANDLED_GROUP,
                )
                runtime.dead_letters.start()
            runtime.kafka_connected = True
            log.info(
                "%s connected to Kafka with %d consumer(s)", settings.service_name, len(consumers)
            )

        kafka_task = asyncio.create_task(connect_kafka(), name="connect-kafka")
        readiness.checks.update(
            database=database_check(engine),
            kafka=kafka_check(settings.kafka_bootstrap),
            consumers=lambda: _true_if(runtime.kafka_connected),
        )
        app.state.runtime = runtime
        if settings.gc_gen0_threshold > 0:
            freeze_startup_objects()
        log.info("%s started", settings.service_name)
        try:
            yield
        finally:
            readiness.shutting_down = True
            grace = settings.shutdown_grace_s
            kafka_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await kafka_task
            await asyncio.gather(*(c.stop(grace) for c in runtime.consumers))
            if runtime.dead_letters is not None:
                await runtime.dead_letters.stop()
            if on_stop is not None:
                await on_stop(runtime)
            await relay.stop(grace)
            await engine.dispose()
            log.info("%s stopped", settings.service_name)

    app = app_class(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        responses={
            "4XX": {"model": ProblemDetails, "content": {"application/problem+json": {}}},
            "5XX": {"model": ProblemDetails, "content": {"application/problem+json": {}}},
        },
    )
    # Readiness exists before start-up so /readyz answers 503 (not 404) while starting.
    app.state.readiness = Readiness({})
    app.state.readiness.checks["started"] = _started(app)
    install_problem_handlers(app)
    app.include_router(health_router(app.state.readiness, settings.service_name))
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware)
    return app


async def _true_if(value: bool) -> bool:
    return value


def _started(app: FastAPI) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return getattr(app.state, "runtime", None) is not None

    return check


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime
