"""Rows Kafka refuses for good are parked, and never stop the rows after them (issue 15)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import RequestTimedOutError, TopicAuthorizationFailedError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import asyncpg_dsn
from ccshared.events import Envelope
from ccshared.kafka import make_producer
from ccshared.outbox import OutboxRelay, outbox_row, pending_count
from tests.helpers import wait_until
from tests.integration.shared.conftest import read_all
from tests.integration.shared.test_outbox import event, relay_for

_INSERT = text(
    "INSERT INTO outbox (topic, key, event_id, event_type, value, headers) "
    "VALUES (:topic, :key, :event_id, :event_type, :value, CAST(:headers AS jsonb))"
)
# A contact.received of a 990 KB HTML e-mail in Chinese: 3 bytes a character in UTF-8.
_CHINESE_MEGABYTE = ('{"body":"' + "客户投诉" * 100_000 + '"}').encode()


def poison_row(topic: str, value: bytes, key: str | None = None) -> dict[str, Any]:
    return {
        "topic": topic,
        "key": key or str(uuid.uuid4()),
        "event_id": uuid.uuid4(),
        "event_type": "contact.received",
        "value": value,
        "headers": "{}",
    }


async def parked_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT event_id, topic, error FROM outbox_parked ORDER BY id")
        )
        return list(result)


async def _published(relay: OutboxRelay, n: int) -> bool:
    return relay.stats.published >= n


async def test_a_row_over_the_message_limit_is_parked_and_the_1000_beside_it_are_published(
    engine: AsyncEngine,
    fresh_database: str,
    kafka_bootstrap: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reproduction: one oversized event among 1,000 ordinary ones used to fail its batch
    for ever (nothing after it published, its neighbours re-published on every retry)."""
    normal = [event(uuid.uuid4(), str(i)) for i in range(1000)]
    poison = poison_row(topic, _CHINESE_MEGABYTE)
    assert len(poison["value"]) > 1_048_576
    async with engine.begin() as conn:
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in normal[:250]])
        await conn.execute(_INSERT, poison)
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in normal[250:]])

    relay = relay_for(fresh_database, kafka_bootstrap)
    with caplog.at_level(logging.ERROR, logger="ccshared.outbox"):
        relay.start()
        try:
            records = await read_all(kafka_bootstrap, topic, expected=1000, timeout_s=30)
            await wait_until(lambda: _published(relay, 1000))
            # Nothing more comes: neither the poison nor a second copy of its neighbours.
            records += await _more(kafka_bootstrap, topic, len(records))
        finally:
            await relay.stop()

    ids = [Envelope.model_validate_json(r.value).event_id for r in records]
    assert len(ids) == 1000
    assert set(ids) == {e.event_id for e in normal}
    [parked] = await parked_rows(engine)
    assert parked.event_id == poison["event_id"]
    assert parked.topic == topic
    assert parked.error.startswith("MessageSizeTooLargeError")
    assert relay.stats.parked == 1
    assert relay.stats.failures == 0  # no batch failed and was tried again
    async with engine.connect() as conn:
        assert await pending_count(conn) == 0
    [logged] = [r for r in caplog.records if "parked" in r.getMessage()]
    assert str(poison["event_id"]) in logged.getMessage()
    assert "客" not in logged.getMessage()  # sizes and ids, never the value


async def _more(bootstrap: str, topic: str, seen: int) -> list[Any]:
    """Records beyond the first `seen` of the topic, read for a short while (none expected)."""
    everything = await read_all(bootstrap, topic, expected=seen + 1, timeout_s=2)
    return everything[seen:]


@pytest.fixture
async def small_message_topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A topic whose broker-side record limit (max.message.bytes) is below the producer's, so
    the broker, not the producer, refuses the big record."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 3, 1, topic_configs={"max.message.bytes": "300000"})]
        )
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def test_a_row_the_broker_refuses_is_found_among_its_batch_and_the_rest_keep_key_order(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, small_message_topic: str
) -> None:
    """The broker refuses a whole record batch (and, its sequence numbers spent, the batches
    of that partition after it): the relay sends those rows one by one to find the culprit,
    and every other row arrives, in its key's order."""
    topic = small_message_topic
    keys = [uuid.uuid4(), uuid.uuid4()]
    padding = "x" * 1500
    normal = [event(keys[i % 2], f"{i:03d}{padding}") for i in range(400)]
    poison = poison_row(topic, b"y" * 400_000, key=str(keys[0]))  # under the producer's 1 MB
    async with engine.begin() as conn:
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in normal[:40]])
        await conn.execute(_INSERT, poison)
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in normal[40:]])

    relay = relay_for(fresh_database, kafka_bootstrap)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    drained = 0

    async def drained_all() -> bool:
        # Drained until all 401 rows left the outbox (published or parked).
        nonlocal drained
        drained += await relay.drain_once(relay_conn)
        return drained == 401

    try:
        await wait_until(drained_all)
        assert relay.stats.failures == 0
    finally:
        await relay_conn.close()
        await relay.stop()

    records = await read_all(kafka_bootstrap, topic, expected=400, timeout_s=30)
    seen: dict[str, list[str]] = {str(k): [] for k in keys}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = Envelope.model_validate_json(record.value)
        label = str(envelope.payload["actor"])[:3]
        if label not in seen[envelope.key]:  # a row published twice counts once
            seen[envelope.key].append(label)
    for i, key in enumerate(keys):
        assert seen[str(key)] == [f"{n:03d}" for n in range(i, 400, 2)]
    [parked] = await parked_rows(engine)
    assert parked.event_id == poison["event_id"]
    assert parked.error.startswith("MessageSizeTooLargeError")
    async with engine.connect() as conn:
        assert await pending_count(conn) == 0


async def test_a_row_for_an_invalid_topic_name_is_parked_and_the_others_are_published(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    normal = [event(uuid.uuid4(), str(i)) for i in range(20)]
    bad = poison_row("no such topic!", b"{}")
    async with engine.begin() as conn:
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in normal[:10]])
        await conn.execute(_INSERT, bad)
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in normal[10:]])

    relay = relay_for(fresh_database, kafka_bootstrap)
    relay.start()
    try:
        records = await read_all(kafka_bootstrap, topic, expected=20, timeout_s=10)
    finally:
        await relay.stop()
    assert {Envelope.model_validate_json(r.value).event_id for r in records} == {
        e.event_id for e in normal
    }
    [parked] = await parked_rows(engine)
    assert parked.event_id == bad["event_id"]
    assert parked.error.startswith("InvalidTopicError")


class _TimingOutProducer:
    """Every delivery times out (a retriable error), as when the partition leader is gone."""

    def __init__(self, real: AIOKafkaProducer) -> None:
        self.real = real

    async def start(self) -> None:
        await self.real.start()

    async def stop(self) -> None:
        await self.real.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        return await self.real.partitions_for(topic)  # type: ignore[no-any-return]

    def create_batch(self) -> object:
        return self.real.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_exception(RequestTimedOutError())
        return future


async def test_a_failure_that_may_pass_parks_nothing_and_the_batch_is_tried_again(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    made: list[object] = []

    def factory() -> object:
        real = make_producer(kafka_bootstrap, "relay")
        producer = _TimingOutProducer(real) if len(made) < 2 else real
        made.append(producer)
        return producer

    relay = OutboxRelay(asyncpg_dsn(fresh_database), factory, poll_interval_s=0.2)  # type: ignore[arg-type]
    relay.max_backoff_s = 0.2
    events = [event(uuid.uuid4(), str(i)) for i in range(10)]
    async with engine.begin() as conn:
        await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in events])
    relay.start()
    try:
        await wait_until(lambda: _published(relay, 10))
    finally:
        await relay.stop()
    assert relay.stats.failures == 2
    assert relay.stats.parked == 0
    assert await parked_rows(engine) == []
    records = await read_all(kafka_bootstrap, topic, expected=10)
    assert {Envelope.model_validate_json(r.value).event_id for r in records} == {
        e.event_id for e in events
    }


class _UnauthorizedTopicProducer(_TimingOutProducer):
    """The broker answers every batch for `denied` with TopicAuthorizationFailed."""

    def __init__(self, real: AIOKafkaProducer, denied: str) -> None:
        super().__init__(real)
        self.denied = denied

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> object:
        if topic != self.denied:
            return await self.real.send_batch(batch, topic, partition=partition)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_exception(TopicAuthorizationFailedError(topic))
        return future


async def test_rows_for_a_topic_the_service_may_not_write_are_parked_without_one_try_each(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    denied = topic + ".dlq"  # exists, so only authorization stands in the way
    made: list[object] = []

    def factory() -> object:
        made.append(_UnauthorizedTopicProducer(make_producer(kafka_bootstrap, "relay"), denied))
        return made[-1]

    allowed = [event(uuid.uuid4(), f"ok {i}") for i in range(10)]
    refused = [event(uuid.uuid4(), f"denied {i}") for i in range(10)]
    async with engine.begin() as conn:
        for ok, no in zip(allowed, refused, strict=True):
            await conn.execute(_INSERT, [outbox_row(ok, topic=topic), outbox_row(no, topic=denied)])
    relay = OutboxRelay(asyncpg_dsn(fresh_database), factory, poll_interval_s=0.2)  # type: ignore[arg-type]
    relay.start()
    try:
        records = await read_all(kafka_bootstrap, topic, expected=10)
        await wait_until(lambda: _parked(relay, 10))
    finally:
        await relay.stop()
    assert {Envelope.model_validate_json(r.value).event_id for r in records} == {
        e.event_id for e in allowed
    }
    parked = await parked_rows(engine)
    assert {p.event_id for p in parked} == {e.event_id for e in refused}
    assert all(p.error.startswith("TopicAuthorizationFailedError") for p in parked)
    assert len(made) <= 3  # the first refusal names the topic: the other rows are not tried


async def _parked(relay: OutboxRelay, n: int) -> bool:
    return relay.stats.parked >= n
