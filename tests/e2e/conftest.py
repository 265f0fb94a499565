"""Several services in-process against the real stack, talking only through Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ccshared.kafka import commit_group_at_end, ensure_topics
from tests.conftest import pg_url


async def start_group_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    await ensure_topics(bootstrap, topics)
    await commit_group_at_end(bootstrap, group, topics)


@pytest.fixture
async def second_database() -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield pg_url(name)
    admin = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
