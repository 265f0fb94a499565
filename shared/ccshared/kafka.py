"""Kafka clients configured the one way this system uses them, and topic provisioning."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ccshared.events.catalog import CATALOG

log = logging.getLogger(__name__)


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    # Idempotent + acks=all: broker-side dedupe of retried batches and per-partition order.
    # An idempotent producer that hits OutOfOrderSequenceNumber stays broken: callers recreate
    # it on any send failure (see OutboxRelay), never reuse it.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str] | None = None,
    *,
    partitions: int = 6,
    client_id: str = "topic-provisioner",
    prefix: str = "",
) -> list[str]:
    """Create missing topics (the catalog's and their dead-letter twins by default), each name
    with `prefix` before it."""
    wanted = [prefix + n for n in (names if names is not None else CATALOG.all_topic_names())]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
            log.info("created topics %s", missing)
        return missing
    finally:
        await admin.close()


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str], timeout_s: float = 10.0
) -> list[TopicPartition]:
    """Every partition of the topics, once the client's metadata knows them all."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        # Asking for a topic adds it to what the client's next metadata request covers.
        found = {t: consumer.partitions_for_topic(t) for t in topics}
        if all(found.values()) or loop.time() > end:
            return [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps or ())]
        await consumer._client.force_metadata_update()


async def commit_group_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """Give a consumer group committed offsets at the current end of each partition, so a
    service started with it reads only what is published from now on (not the history)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        # Topics created a moment ago may not be in the client's metadata yet: wait for them.
        tps = await topic_partitions(consumer, topics)
        missing = set(topics) - {tp.topic for tp in tps}
        if missing:
            raise RuntimeError(f"topics not known to the cluster: {', '.join(sorted(missing))}")
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.commit({tp: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()


async def kafka_reachable(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the cluster answers a metadata request within the timeout."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="readiness", request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            await admin.list_topics()
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            log.debug("closing readiness admin client failed", exc_info=True)
