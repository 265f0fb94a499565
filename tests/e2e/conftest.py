"""Several services in-process against the real stack, talking only through Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ccshared.kafka import commit_group_at_end, ensure_topics
from tests.conftest import TOPIC_PREFIX, scratch_database, topic


async def start_group_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commit a consumer group at the end of catalog topics (as the suite's services have them
    on Kafka, with TOPIC_PREFIX), so it reads only what is published from now on."""
    await ensure_topics(bootstrap, topics, prefix=TOPIC_PREFIX)
    await commit_group_at_end(bootstrap, group, [topic(t) for t in topics])


@pytest.fixture
async def second_database() -> AsyncIterator[str]:
    async with scratch_database() as url:
        yield url
