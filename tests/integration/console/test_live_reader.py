"""The live reader on the real broker: every partition from the end, with no consumer group, and
partitions added later. Topics of its own (unique names), not the catalog's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.errors import KafkaConnectionError

from ccshared.events import new_event
from ccshared.events.payloads import NotificationCreated
from ccshared.kafka import ensure_topics, make_producer
from console.domain.live import Viewer
from console.live.hub import Hub, LiveEvent
from console.live.reader import LiveReader
from tests.conftest import KAFKA_BOOTSTRAP
from tests.helpers import wait_until

AMY = Viewer(user_id="amy", subject="amy", supervisor=False, agent_id="amy")


def note(text: str) -> NotificationCreated:
    return NotificationCreated(
        notification_id=uuid.uuid4(),
        recipient_id="amy",
        kind="mention",
        text=text,
        created_at=datetime.now(UTC),
    )


async def send(name: str, payload: NotificationCreated, partition: int | None = None) -> None:
    producer = make_producer(KAFKA_BOOTSTRAP, "live-reader-test")
    await producer.start()
    try:
        event = new_event(payload, producer="test")
        await producer.send_and_wait(
            name,
            event.to_bytes(),
            key=event.key.encode(),
            partition=partition,
            headers=[("event_type", event.event_type.encode())],
        )
    finally:
        await producer.stop()


@pytest.fixture
async def reader_topic() -> AsyncIterator[str]:
    name = f"live-reader-test-{uuid.uuid4().hex[:10]}"
    await ensure_topics(KAFKA_BOOTSTRAP, [name], partitions=1)
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def texts(queue: asyncio.Queue[LiveEvent | None], n: int) -> list[str]:
    found = []
    async with asyncio.timeout(30):
        while len(found) < n:
            event = await queue.get()
            assert event is not None
            found.append(event.frame.decode())
    return found


async def test_the_reader_starts_at_the_end_and_reads_partitions_added_later(
    reader_topic: str,
) -> None:
    await send(reader_topic, note("before the reader started"))
    hub = Hub(buffer_size=100, queue_size=100)
    subscriber, _ = hub.subscribe(AMY)
    reader = LiveReader(
        hub,
        bootstrap=KAFKA_BOOTSTRAP,
        topics=[reader_topic],
        client_id="live-reader-test",
        metadata_interval_s=0.5,
    )
    reader.start()
    try:

        async def ready() -> bool:
            return reader.ready

        await wait_until(ready, timeout=30)
        await send(reader_topic, note("after"))
        (first,) = await texts(subscriber.queue, 1)
        assert '"text":"after"' in first  # not the one from before the start
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
        await admin.start()
        try:
            await admin.create_partitions({reader_topic: NewPartitions(total_count=2)})
        finally:
            await admin.close()
        # Published to the new partition, possibly before the reader noticed it: read anyway
        # (a partition added while the reader runs is read from its beginning).
        await send(reader_topic, note("in the new partition"), partition=1)
        (second,) = await texts(subscriber.queue, 1)
        assert '"text":"in the new partition"' in second
        assert hub.last_seq == 2
    finally:
        await reader.stop()


async def test_after_a_kafka_error_the_reader_resumes_where_it_was_with_a_new_client(
    reader_topic: str,
) -> None:
    failing = asyncio.Event()
    made: list[AIOKafkaConsumer] = []

    resume = asyncio.Event()

    class Flaky(AIOKafkaConsumer):  # type: ignore[misc]
        async def start(self) -> None:
            if len(made) > 1:  # the new client waits until the test has published
                await resume.wait()
            await super().start()

        async def getmany(self, *args: Any, **kwargs: Any) -> Any:
            if failing.is_set():
                failing.clear()
                raise KafkaConnectionError("the broker went away (test)")
            return await super().getmany(*args, **kwargs)

    def factory() -> AIOKafkaConsumer:
        consumer = Flaky(
            bootstrap_servers=KAFKA_BOOTSTRAP,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
        )
        made.append(consumer)
        return consumer

    hub = Hub(buffer_size=100, queue_size=100)
    subscriber, _ = hub.subscribe(AMY)
    reader = LiveReader(
        hub, bootstrap="", topics=[reader_topic], client_id="t", consumer_factory=factory
    )
    reader.start()
    try:

        async def ready() -> bool:
            return reader.ready

        await wait_until(ready, timeout=30)
        await send(reader_topic, note("one"))
        await texts(subscriber.queue, 1)
        failing.set()

        async def second_client() -> bool:
            return len(made) == 2

        await wait_until(second_client, timeout=30)
        await send(reader_topic, note("two"))  # while no client reads: not skipped
        resume.set()
        (second,) = await texts(subscriber.queue, 1)
        assert '"text":"two"' in second
        await send(reader_topic, note("three"))
        (third,) = await texts(subscriber.queue, 1)
        assert '"text":"three"' in third
        assert hub.last_seq == 3  # nothing read twice, nothing skipped
    finally:
        await reader.stop()
