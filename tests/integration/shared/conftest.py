"""Fixtures for the shared plumbing tests: a migrated database, its engine, private topics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import make_engine, migrate, shared_migrations
from ccshared.kafka import ensure_topics, make_producer


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(fresh_database, pool_size=5)
    await migrate(engine, shared_migrations())
    yield engine
    await engine.dispose()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A topic (and its dead-letter twin) that only this test uses; deleted afterwards."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, [name, name + ".dlq"], partitions=3)
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name, name + ".dlq"])
    finally:
        await admin.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_bootstrap, "test-producer")
    await producer.start()
    yield producer
    await producer.stop()


async def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """Read a topic from the beginning until `expected` records arrived (or the time is up)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list = []
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while len(records) < expected and loop.time() < end:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records
