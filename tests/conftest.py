"""Fixtures for tests against the real local stack (`make test` starts it first).

Each test that needs a database gets a fresh one, so tests neither see nor break each other's
data; each Kafka test uses topics of its own for the same reason. The suite shares the broker
and PostgreSQL with `make run`'s services but none of their data: its services use `test.`
topics (TOPIC_PREFIX) and scratch databases `t_<random>`, never the stack's `intake`, `router`,
`sla` and `feedback`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

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

# The suite's own topics: every service a test starts, in-process or as a subprocess, reads and
# writes `test.<catalog name>` (its <SERVICE>_KAFKA_TOPIC_PREFIX, set here for the whole run),
# so `make run`'s services on the same broker never get a test's contact (they used to ticket
# them by the thousand) and no test gets theirs. A test naming a catalog topic itself (a tail,
# a fake producer, a consumer group) uses topic(name).
TOPIC_PREFIX = os.environ.get("CC_TEST_TOPIC_PREFIX", "test.")
SERVICES = ("intake", "router", "sla", "feedback", "console")
for _service in SERVICES:
    os.environ[f"{_service.upper()}_KAFKA_TOPIC_PREFIX"] = TOPIC_PREFIX


def topic(name: str) -> str:
    """A catalog topic as the suite's services have it on Kafka."""
    return TOPIC_PREFIX + name


async def groups_at_end(bootstrap: str, service: str, suffix: str, specs: Sequence[Any]) -> None:
    """Every consumer group of a service started with `consumer_group_suffix=suffix` begins at
    the end of its topics: it takes what the test publishes, not what earlier tests left."""
    from ccshared.kafka import commit_group_at_end

    for spec in specs:
        await commit_group_at_end(
            bootstrap, f"{service}.{spec.name}{suffix}", [topic(t) for t in spec.topics]
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests are marked by folder, so `pytest -m unit` runs without the stack.
    for item in items:
        path = str(item.fspath)
        for marker in ("unit", "integration", "e2e", "browser"):
            if f"/tests/{marker}/" in path:
                item.add_marker(getattr(pytest.mark, marker))
    # A test that stops and starts the shared broker runs after every other, so no test is
    # cut off by it (and `make run`'s services lose Kafka only at the very end, for seconds).
    items.sort(key=lambda item: item.get_closest_marker("restarts_broker") is not None)


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
