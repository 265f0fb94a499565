"""Builds a service's FastAPI app and runs its background parts for the app's lifetime.

Start-up: logging, database engine, migrations (shared + the service's; or, with
`<SERVICE>_MIGRATE_ON_START=false`, a check that a migrate Job applied them), Kafka topics, the
outbox relay, the consumers. Shut-down, in reverse: stop taking new work, let consumers and the
relay finish what is in flight, close the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared import metrics, tracing
from ccshared.consumer import BatchHandler, Handler, IdempotentConsumer
from ccshared.db import asyncpg_dsn, make_engine
from ccshared.dlq import HANDLED_GROUP, DeadLetterWatch
from ccshared.events import Envelope
from ccshared.events.catalog import DLQ_SUFFIX
from ccshared.gc import freeze_startup_objects, tune_gc
from ccshared.health import Readiness, database_check, health_router, kafka_check
from ccshared.http import BodySizeLimitMiddleware, CorrelationIdMiddleware
from ccshared.kafka import ensure_topics, make_producer
from ccshared.logging import configure_logging
from ccshared.migrate import apply_migrations, require_migrated, service_migrations
from ccshared.outbox import OutboxRelay
from ccshared.problem_handlers import install_problem_handlers
from ccshared.problems import ProblemDetails
from ccshared.settings import ServiceSettings

log = logging.getLogger(__name__)


PATIENT = 250
"""`ConsumerSpec.patience_ms` of the consumers nobody waits on: a quarter of a second later
costs no one, and their fetches come a few a second instead of one per record."""


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
    # For a consumer nobody waits on (a link, a projection): the broker may hold its fetch up
    # to this long to fill it, so it takes fewer, larger batches (IdempotentConsumer.patience_ms;
    # `PATIENT`).
    patience_ms: int = 0


@dataclass
class Runtime:
    """Everything a running service holds; handlers and endpoints reach it via app.state."""

    settings: ServiceSettings
    engine: AsyncEngine
    relay: OutboxRelay
    readiness: Readiness
    consumers: list[IdempotentConsumer] = field(default_factory=list)
    kafka_connected: bool = False
    # The service's own parts (its caches, pools, writers, background tasks), one typed object
    # that the service's bootstrap (`on_start`) builds; the service reads it back through its
    # `api/deps.py`, narrowed to its own class, never as untyped lookups.
    parts: Any = None
    dead_letters: DeadLetterWatch | None = None
    # Set when tracing is on (ccshared.tracing): for spans of the service's own.
    tracer: Tracer | None = None


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
    traced = tracing.make_tracer(
        settings.service_name, settings.tracing_otlp_endpoint, settings.tracing_sample_ratio
    )
    tracer = traced[0] if traced is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        tune_gc(settings.gc_gen0_threshold)
        url = settings.database_url.get_secret_value()
        engine = make_engine(
            url, pool_size=settings.database_pool_size, app_name=settings.service_name
        )
        migrations = service_migrations(settings, package)
        if settings.migrate_on_start:
            await _retry_until(
                "migrations",
                lambda: apply_migrations(engine, settings, migrations),
                startup_deadline_s,
            )
        else:  # a migrate Job applies them: wait for it (within the start-up deadline)
            await _retry_until(
                "schema check",
                lambda: require_migrated(engine, migrations, f"python -m {package}.migrate"),
                startup_deadline_s,
            )

        def producer() -> Any:
            return make_producer(
                settings.kafka_bootstrap, settings.client_id, security=settings.kafka_security
            )

        relay = OutboxRelay(
            asyncpg_dsn(url),
            producer,
            name=f"{settings.service_name}-outbox",
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            linger_s=settings.outbox_linger_s,
            vacuum_every=settings.outbox_vacuum_every,
            topic_prefix=settings.kafka_topic_prefix,
            service=settings.service_name,
        )
        readiness: Readiness = app.state.readiness
        runtime = Runtime(settings, engine, relay, readiness, tracer=tracer)
        if on_start is not None:
            await on_start(runtime)
        relay.start()

        async def connect_kafka() -> None:
            # In the background: a service whose Kafka is down still starts and, through the
            # outbox, still accepts work; it reports not ready until this has finished.
            if settings.kafka_provision_topics:
                await _retry_until(
                    "topic provisioning",
                    lambda: ensure_topics(
                        settings.kafka_bootstrap,
                        partitions=settings.topic_partitions,
                        prefix=settings.kafka_topic_prefix,
                        replication_factor=settings.topic_replication_factor,
                        min_insync_replicas=settings.topic_min_insync_replicas,
                        security=settings.kafka_security,
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
                    commit_interval_s=settings.consumer_commit_interval_s,
                    patience_ms=spec.patience_ms,
                    event_types=spec.event_types,
                    after_commit=spec.after_commit(runtime) if spec.after_commit else None,
                    offset_reset=settings.consumer_offset_reset,
                    batch_handler=spec.batch_handler(runtime) if spec.batch_handler else None,
                    security=settings.kafka_security,
                    tracer=tracer,
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
                    security=settings.kafka_security,
                )
                runtime.dead_letters.start()
            runtime.kafka_connected = True
            log.info(
                "%s connected to Kafka with %d consumer(s)", settings.service_name, len(consumers)
            )

        kafka_task = asyncio.create_task(connect_kafka(), name="connect-kafka")
        readiness.checks.update(
            database=database_check(engine),
            kafka=kafka_check(settings.kafka_bootstrap, settings.kafka_security),
            consumers=lambda: _true_if(runtime.kafka_connected),
        )
        app.state.runtime = runtime
        metrics.track(runtime)
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
            metrics.untrack(runtime)
            if traced is not None:
                tracing.shutdown(traced[1])
            log.info("%s stopped", settings.service_name)

    app = app_class(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets below, not a CDN
        redoc_url=None,
        swagger_ui_parameters={"persistAuthorization": True},
        responses={
            "4XX": {"model": ProblemDetails, "content": {"application/problem+json": {}}},
            "5XX": {"model": ProblemDetails, "content": {"application/problem+json": {}}},
        },
    )
    # Readiness exists before start-up so /readyz answers 503 (not 404) while starting.
    app.state.readiness = Readiness({})
    app.state.readiness.checks["started"] = _started(app)
    install_problem_handlers(app)
    _serve_docs_offline(app)
    app.include_router(health_router(app.state.readiness, settings.service_name))
    token = settings.metrics_token
    app.include_router(metrics.metrics_router(token.get_secret_value() if token else None))
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware)
    # Outermost: it sees the status of every answer, the last-line 500s included.
    app.add_middleware(
        metrics.ObservabilityMiddleware, service=settings.service_name, tracer=tracer
    )
    return app


# Swagger UI's and ReDoc's JavaScript, CSS and icon as packaged by fastapi-offline: FastAPI's
# own pages load them from a CDN, so /docs was blank on a machine without internet.
_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_URL = "/static-docs"


def _serve_docs_offline(app: FastAPI) -> None:
    """/docs (with its OAuth2 redirect page, for the Authorize button) and /redoc, every asset
    served by the service itself under DOCS_ASSETS_URL; relative to the root path, so they
    also work behind a proxy that mounts the service under a prefix."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=_DOCS_ASSETS), name="static-docs")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def assets(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{DOCS_ASSETS_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{assets(request)}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets(request)}/swagger-ui.css",
            swagger_favicon_url=f"{assets(request)}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=f"{request.scope.get('root_path', '')}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets(request)}/redoc.standalone.js",
            redoc_favicon_url=f"{assets(request)}/favicon.png",
            with_google_fonts=False,
        )


async def _true_if(value: bool) -> bool:
    return value


def _started(app: FastAPI) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return getattr(app.state, "runtime", None) is not None

    return check


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime
