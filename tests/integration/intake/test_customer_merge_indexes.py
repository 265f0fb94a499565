"""Intake's customer-merge indexes are built CONCURRENTLY by migration 0009, on every way a
database can reach it: a new database (0007 adds the columns, 0009 the indexes), one where 0007
still built them with a plain CREATE INDEX (it ran on development databases before the change:
0009 rebuilds them, the runner accepts the edited 0007 since it records migrations by name), and
one where an interrupted concurrent build left an invalid index (dropped and built again)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import Migration, asyncpg_dsn, load_migrations, make_engine, migrate
from ccshared.db import shared_migrations as shared

INDEXES = ("customers_merged", "customers_merged_into")

# 0007 as it was applied on the databases that ran it before 0009 existed.
APPLIED_0007 = """\
ALTER TABLE customers ADD COLUMN merged_into uuid REFERENCES customers (id),
                      ADD COLUMN merged_at timestamptz;
CREATE INDEX customers_merged ON customers (id) WHERE merged_into IS NOT NULL;
CREATE INDEX customers_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;
"""


def _intake() -> list[Migration]:
    return shared() + load_migrations("intake", "intake")


def _up_to(version: int, *, applied_0007: bool = False) -> list[Migration]:
    before = [m for m in _intake() if m.component == "ccshared" or m.version <= version]
    if applied_0007:
        before = [
            Migration(m.component, m.version, m.name, APPLIED_0007)
            if (m.component, m.version) == ("intake", 7)
            else m
            for m in before
        ]
    return before


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(fresh_database, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    yield conn
    await conn.close()


async def _indexes(db: asyncpg.Connection) -> dict[str, tuple[bool, str]]:
    """Each customer-merge index: whether it is valid, and its definition."""
    rows = await db.fetch(
        "SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) AS definition"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = ANY($1::text[])",
        list(INDEXES),
    )
    return {r["relname"]: (r["indisvalid"], r["definition"]) for r in rows}


def _assert_built(found: dict[str, tuple[bool, str]]) -> None:
    assert set(found) == set(INDEXES)
    assert found["customers_merged"] == (
        True,
        "CREATE INDEX customers_merged ON public.customers USING btree (id)"
        " WHERE (merged_into IS NOT NULL)",
    )
    assert found["customers_merged_into"] == (
        True,
        "CREATE INDEX customers_merged_into ON public.customers USING btree (merged_into)"
        " WHERE (merged_into IS NOT NULL)",
    )


async def test_a_new_database_gets_the_indexes_from_0009_not_0007(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await migrate(engine, _up_to(8))
    assert await _indexes(db) == {}  # 0007 adds only the columns now
    assert await migrate(engine, _intake()) == ["intake/0009_customer_merge_indexes.sql"]
    _assert_built(await _indexes(db))


async def test_a_database_where_0007_built_them_under_lock_migrates_and_keeps_them(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await migrate(engine, _up_to(8, applied_0007=True))
    before = await _indexes(db)
    assert {name: valid for name, (valid, _) in before.items()} == dict.fromkeys(INDEXES, True)
    merged, target = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO customers (id) VALUES ($1)", target)
    await db.execute("INSERT INTO customers (id, merged_into) VALUES ($1, $2)", merged, target)

    assert await migrate(engine, _intake()) == ["intake/0009_customer_merge_indexes.sql"]
    _assert_built(await _indexes(db))
    assert await db.fetchval("SELECT id FROM customers WHERE merged_into IS NOT NULL") == merged


async def test_an_invalid_index_left_by_an_interrupted_build_is_built_again(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await migrate(engine, _up_to(8))
    await db.execute("INSERT INTO customers (id) VALUES ($1), ($2)", uuid.uuid4(), uuid.uuid4())
    # A concurrent build that fails half way leaves its index behind, marked invalid.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute("CREATE UNIQUE INDEX CONCURRENTLY customers_merged ON customers ((1))")
    assert (await _indexes(db))["customers_merged"][0] is False

    await migrate(engine, _intake())
    _assert_built(await _indexes(db))
