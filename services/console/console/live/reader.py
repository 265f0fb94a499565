"""Reads the topics the live stream needs, every partition, from the end, with no consumer group.

Why no group: every replica must see every event (each holds its own browsers' streams), and
what happened before it started is none of its business (a page loads its data from the APIs,
then follows the stream). A group would split the partitions between replicas, and commit
offsets nobody needs; so the reader assigns itself all partitions and seeks to their end.
It checks the topics' partitions every `metadata_interval_s` (a partition added later is read
from its beginning: all of it is new), and after a Kafka error starts a new client at the
positions it had reached, so nothing is skipped while the cluster was away (unless the
records were deleted meanwhile: then from the end)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ccshared.events import EventDecodeError, decode_event
from ccshared.kafka import PLAINTEXT, KafkaSecurity, topic_partitions
from console.domain.live import may_concern_anyone
from console.live.hub import Hub

log = logging.getLogger(__name__)


class LiveReader:
    def __init__(
        self,
        hub: Hub,
        *,
        bootstrap: str,
        topics: Sequence[str],
        client_id: str,
        security: KafkaSecurity = PLAINTEXT,
        metadata_interval_s: float = 30.0,
        consumer_factory: Callable[[], AIOKafkaConsumer] | None = None,
    ) -> None:
        self.hub = hub
        self.topics = list(topics)
        self.metadata_interval_s = metadata_interval_s
        self._factory = consumer_factory or (
            lambda: AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                fetch_max_wait_ms=100,
                **security.client_options(),
            )
        )
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = False  # every partition assigned and positioned
        self.skipped = 0  # records no rule lets anyone see, or not an event

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-reader")

    async def stop(self) -> None:
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            consumer = self._factory()
            try:
                await consumer.start()
                await self._assign(consumer)
                delay = 0.5
                await self._read(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a new client, at the positions reached
                self.ready = False
                log.warning("live reader: %r; reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        """All partitions: those read before at their positions, the others at their end
        (at start) or beginning (added since)."""
        while True:
            partitions = await topic_partitions(consumer, self.topics)
            if {tp.topic for tp in partitions} == set(self.topics):
                break
            log.info("live reader: waiting for topics %s", self.topics)
            await asyncio.sleep(1.0)
        consumer.assign(partitions)
        first_time = not self._positions
        new = [tp for tp in partitions if tp not in self._positions]
        for tp in partitions:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
        if new:
            if first_time:
                await consumer.seek_to_end(*new)
            else:
                await consumer.seek_to_beginning(*new)
        for tp in partitions:  # resolves the seeks: the reader is then positioned
            self._positions[tp] = await consumer.position(tp)
        self.ready = True
        log.info("live reader: %d partitions of %s, from the end", len(partitions), self.topics)

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        next_check = loop.time() + self.metadata_interval_s
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    self._take(record)
                if records:
                    self._positions[tp] = records[-1].offset + 1
            if loop.time() >= next_check:
                next_check = loop.time() + self.metadata_interval_s
                if await self._partitions_added(consumer):
                    for tp in consumer.assignment():
                        self._positions[tp] = await consumer.position(tp)
                    await self._assign(consumer)

    async def _partitions_added(self, consumer: AIOKafkaConsumer) -> bool:
        await consumer._client.force_metadata_update()
        known = {
            TopicPartition(t, p)
            for t in self.topics
            for p in consumer.partitions_for_topic(t) or ()
        }
        return not known <= consumer.assignment()

    def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        declared = dict(record.headers or ()).get("event_type")
        if declared is not None and not may_concern_anyone(declared.decode(errors="replace")):
            self.skipped += 1
            return
        try:
            envelope, _ = decode_event(record.value)
        except EventDecodeError as exc:
            self.skipped += 1
            log.debug("live reader: skipped a record of %s: %s", record.topic, exc)
            return
        self.hub.publish(
            envelope.event_type,
            str(envelope.event_id),
            envelope.occurred_at.isoformat(),
            envelope.payload,
        )
