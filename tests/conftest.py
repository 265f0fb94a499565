"""Fixtures for tests against the real local stack (`make test` starts it first).

Each test that needs a database gets a fresh one, so tests neither see nor break each other's
data; each Kafka test uses topics of its own for the same reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

# The suite runs on a development machine: the services it builds, and every process it
# spawns (they inherit the environment), accept the development keys and secrets.
os.environ["CC_DEVELOPMENT"] = "1"

PG_HOST = os.environ.get("CC_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CC_PG_PORT", "55432"))
PG_USER = os.environ.get("CC_PG_USER", "contactcenter")
PG_PASSWORD = os.environ.get("CC_PG_PASSWORD", "contactcenter")
KAFKA_BOOTSTRAP = os.environ.get(
    "CC_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('CC_KAFKA_PORT', '19092')}"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests are marked by folder, so `pytest -m unit` runs without the stack.
    for item in items:
        path = str(item.fspath)
        for marker in ("unit", "integration", "e2e"):
            if f"/tests/{marker}/" in path:
                item.add_marker(getattr(pytest.mark, marker))


def pg_url(database: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG_USER}:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/{database}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return KAFKA_BOOTSTRAP


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """An empty database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield pg_url(name)
    finally:
        admin = await asyncpg.connect(pg_url("postgres", "postgresql"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """An empty database for this test."""
    async with scratch_database() as url:
        yield url
