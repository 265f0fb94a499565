"""Migrations against a real PostgreSQL: a migration that cannot get its lock gives up (so the
queries queued behind it run again) and says why, instead of hanging with the table blocked; one
that runs too long is rolled back; a `-- migrate: no-transaction` file builds an index
CONCURRENTLY."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import (
    Migration,
    MigrationTimeout,
    asyncpg_dsn,
    make_engine,
    migrate,
    pending_migrations,
)
from tests.helpers import wait_until

TABLE = Migration("demo", 1, "0001_things.sql", "CREATE TABLE things (n int, label text);")
REWRITE = Migration(
    "demo", 2, "0002_things_big.sql", "ALTER TABLE things ALTER COLUMN n TYPE bigint;"
)
FAST = {"lock_timeout_s": 0.2, "retry_base_s": 0.05}


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(fresh_database, pool_size=2)
    await migrate(engine, [TABLE])
    yield engine
    await engine.dispose()


@pytest.fixture
async def reader(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    """Another session, e.g. an old replica, in the middle of a long transaction on the table."""
    conn = await asyncpg.connect(
        asyncpg_dsn(fresh_database), server_settings={"application_name": "long-reader"}
    )
    yield conn
    await conn.close()


async def applied(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        rows = await raw.driver_connection.fetch("SELECT name FROM schema_migrations")
    return {r["name"] for r in rows}


async def test_migration_waiting_on_a_lock_gives_up_and_names_the_blocking_session(
    engine: AsyncEngine, reader: asyncpg.Connection
) -> None:
    async with reader.transaction():
        await reader.fetch("SELECT * FROM things")  # holds ACCESS SHARE until it ends
        with pytest.raises(MigrationTimeout) as failure:
            # Without a lock timeout this waits as long as the reader's transaction does.
            await asyncio.wait_for(migrate(engine, [TABLE, REWRITE], lock_retries=2, **FAST), 20)
        # Meanwhile nothing queued behind the migration's lock: the table answers at once.
        assert await reader.fetchval("SELECT count(*) FROM things") == 0
    message = str(failure.value)
    assert "0002_things_big.sql" in message
    assert "lock" in message
    assert "3 attempts" in message
    assert "long-reader" in message  # who holds it: the oldest open transactions
    assert "0002_things_big.sql" not in await applied(engine)
    assert [m.name for m in await pending_migrations(engine, [TABLE, REWRITE])] == [REWRITE.name]


async def test_queries_queued_behind_a_waiting_migration_run_when_it_gives_up(
    engine: AsyncEngine, reader: asyncpg.Connection, fresh_database: str
) -> None:
    """The outage the lock timeout prevents: a migration waiting for its exclusive lock makes
    every later query on the table wait behind it, for as long as the long transaction lasts."""
    other = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        async with reader.transaction():
            await reader.fetch("SELECT * FROM things")
            migration = asyncio.create_task(
                migrate(engine, [TABLE, REWRITE], lock_retries=0, lock_timeout_s=1.0)
            )

            async def migration_waits() -> bool:
                return bool(
                    await other.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'ALTER TABLE things%'"
                    )
                )

            await wait_until(migration_waits, timeout=10)
            # Queued behind the migration's lock request; answered once it gives up, while the
            # long transaction is still open.
            assert await asyncio.wait_for(other.fetchval("SELECT count(*) FROM things"), 10) == 0
            with pytest.raises(MigrationTimeout):
                await migration
    finally:
        await other.close()


async def test_lock_timeout_is_retried_and_the_migration_applies_once_the_lock_is_free(
    engine: AsyncEngine, reader: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ccshared.db")
    transaction = reader.transaction()
    await transaction.start()
    await reader.fetch("SELECT * FROM things")
    running = asyncio.create_task(migrate(engine, [TABLE, REWRITE], lock_retries=50, **FAST))

    async def retried() -> bool:
        return any("retrying" in r.getMessage() for r in caplog.records)

    await wait_until(retried, timeout=10)
    await transaction.commit()
    assert await asyncio.wait_for(running, 20) == ["demo/0002_things_big.sql"]
    assert await reader.fetchval(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'things' AND column_name = 'n'"
    ) == ("bigint")


async def test_migration_running_past_the_statement_timeout_is_rolled_back(
    engine: AsyncEngine,
) -> None:
    slow = Migration(
        "demo", 2, "0002_slow.sql", "CREATE TABLE half_done (n int); SELECT pg_sleep(5);"
    )
    with pytest.raises(MigrationTimeout, match=r"0002_slow\.sql.*statement timeout"):
        await asyncio.wait_for(migrate(engine, [TABLE, slow], statement_timeout_s=0.2), 20)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        exists = await raw.driver_connection.fetchval("SELECT to_regclass('half_done')")
    assert exists is None  # one transaction: nothing of it stayed


async def test_the_migration_settings_do_not_leak_into_the_pooled_connection(
    engine: AsyncEngine,
) -> None:
    no_tx = Migration(
        "demo", 2, "0002_ix.sql", "-- migrate: no-transaction\nCREATE INDEX ix ON things (n);"
    )
    await migrate(engine, [TABLE, no_tx], lock_timeout_s=0.2, statement_timeout_s=0.5)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        assert await raw.driver_connection.fetchval("SHOW lock_timeout") == "0"
        assert await raw.driver_connection.fetchval("SHOW statement_timeout") == "0"


async def test_no_transaction_migration_builds_an_index_concurrently(
    engine: AsyncEngine, reader: asyncpg.Connection
) -> None:
    concurrently = Migration(
        "demo",
        2,
        "0002_things_by_label.sql",
        "-- migrate: no-transaction\n"
        "-- Re-runnable: a failed CONCURRENTLY build leaves an invalid index behind.\n"
        "DROP INDEX CONCURRENTLY IF EXISTS things_by_label;\n"
        "CREATE INDEX CONCURRENTLY things_by_label ON things (label);\n",
    )
    assert not concurrently.transactional
    await reader.execute("INSERT INTO things SELECT g, 'x' || g FROM generate_series(1, 1000) g")
    assert await migrate(engine, [TABLE, concurrently]) == ["demo/0002_things_by_label.sql"]
    valid = await reader.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'things_by_label'::regclass"
    )
    assert valid is True
    assert "0002_things_by_label.sql" in await applied(engine)
    assert await migrate(engine, [TABLE, concurrently]) == []  # recorded: not run again
