"""A service assembled by create_service_app starts against the real stack and reports health."""

from __future__ import annotations

import asyncpg
import httpx
from pydantic import SecretStr

from ccshared.dlq import service_dead_letter_topics
from router.app import create_app
from router.settings import RouterSettings
from tests.conftest import pg_url
from tests.helpers import wait_until


async def test_service_migrates_provisions_and_reports_ready(
    fresh_database: str, kafka_bootstrap: str
) -> None:
    settings = RouterSettings(
        database_url=SecretStr(fresh_database), kafka_bootstrap=kafka_bootstrap, log_json=False
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        before = await client.get("/readyz")
        assert before.status_code == 503  # lifespan not started: not ready, and says why
        assert before.json()["checks"]["started"] is False

        async with app.router.lifespan_context(app):
            assert (await client.get("/healthz")).json()["status"] == "ok"
            # Kafka clients connect in the background; readiness waits for them.
            ready = await wait_until(lambda: _ready(client))
            assert ready.json()["checks"] == {
                "started": True,
                "database": True,
                "kafka": True,
                "consumers": True,
            }
            openapi = (await client.get("/openapi.json")).json()
            assert "/readyz" in openapi["paths"]
            # Dead letters of what it consumes are counted (and warned about) once a minute.
            watch = app.state.runtime.dead_letters
            assert sorted(watch.topics) == sorted(
                service_dead_letter_topics("router", settings.kafka_topic_prefix)
            )
            assert watch.interval_s == settings.dlq_check_interval_s

    name = fresh_database.rsplit("/", 1)[1]
    conn = await asyncpg.connect(pg_url(name, "postgresql"))
    try:
        applied = {
            (r["component"], r["version"])
            for r in await conn.fetch("SELECT component, version FROM schema_migrations")
        }
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert ("ccshared", 1) in applied
    assert ("ccshared", 2) in applied
    assert ("router", 1) in applied
    assert {"outbox", "outbox_parked", "processed_events"} <= tables


async def _ready(client: httpx.AsyncClient) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if response.status_code == 200 else None


async def test_migrations_run_once_when_replicas_start_together(fresh_database: str) -> None:
    import asyncio

    from ccshared.db import load_migrations, make_engine, migrate, shared_migrations

    migrations = shared_migrations() + load_migrations("router", "router")
    engines = [make_engine(fresh_database, pool_size=1) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(e, migrations) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(f"{m.component}/{m.name}" for m in migrations)


async def test_a_changed_applied_migration_is_refused_with_a_clear_error(
    fresh_database: str,
) -> None:
    import pytest

    from ccshared.db import Migration, MigrationMismatch, make_engine, migrate

    engine = make_engine(fresh_database, pool_size=1)
    try:
        await migrate(engine, [Migration("demo", 1, "0001_first.sql", "CREATE TABLE a (n int);")])
        with pytest.raises(MigrationMismatch, match=r"0001_first\.sql"):
            await migrate(
                engine, [Migration("demo", 1, "0001_other.sql", "CREATE TABLE b (n int);")]
            )
    finally:
        await engine.dispose()
