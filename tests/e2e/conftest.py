"""Several services in-process against the real stack, talking only through Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ccshared.kafka import commit_group_at_end, ensure_topics
from tests.conftest import scratch_database


async def start_group_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    await ensure_topics(bootstrap, topics)
    await commit_group_at_end(bootstrap, group, topics)


@pytest.fixture
async def second_database() -> AsyncIterator[str]:
    async with scratch_database() as url:
        yield url
