"""Transactional outbox: write events with the state change, publish them after commit.

Writers call `enqueue` (or build `outbox_rows` into their own statement) inside the transaction
that changes state. One `OutboxRelay` per service database (elected by an advisory lock, so extra
replicas stand by) publishes committed rows to Kafka in id order and deletes them: at least once,
so consumers dedupe by event id.

The trap this avoids: ids from a sequence become visible out of commit order. A relay that reads
`id > last_seen` skips a row whose transaction took its id early but committed late. The relay
here reads only rows whose transaction id is below the xmin of the current snapshot, i.e. rows of
transactions that every snapshot now sees as settled. It also never passes a committed row that is
still above that horizon, so rows of one key go out in the order they were written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import array_params, insert_from_arrays, insert_many
from ccshared.events.envelope import Envelope
from ccshared.tasks import finish_or_cancel

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox"
_RELAY_LOCK = 0x6363_6F62  # "ccob"
_HELD_BACK_RETRY_S = 0.02

_INSERT = text(
    "INSERT INTO outbox (topic, key, event_id, event_type, value, headers) "
    "VALUES (:topic, :key, :event_id, :event_type, :value, CAST(:headers AS jsonb))"
)

# Rows every transaction has settled, and none past the first committed-but-unsettled row: the
# visible rows below the smallest id a not-yet-settled transaction (txid >= our xmin) wrote are
# exactly the settled ones, so no txid filter is needed on them. Written so that the planner
# walks the primary key in order and stops after $1 rows: an index scan, which also marks the
# entries of rows deleted earlier as dead so later scans skip them (a bitmap scan over the whole
# index, which the planner picked while it had a txid filter to apply, revisited every deleted
# row on every poll until the next vacuum).
_FETCH_SETTLED = """
SELECT o.id, o.topic, o.key, o.event_id, o.event_type, o.value, o.headers
FROM outbox o
WHERE o.id < COALESCE(
    (SELECT min(u.id) FROM outbox u WHERE u.txid >= pg_snapshot_xmin(pg_current_snapshot())),
    9223372036854775807)
ORDER BY o.id
LIMIT $1
"""

# Anything left (held back behind an unsettled row)? min() reads the primary key's first live
# entry; EXISTS would scan the heap from the start, through every row deleted since the last
# vacuum.
_ANY_LEFT = "SELECT min(id) IS NOT NULL FROM outbox"


def outbox_row(
    event: Envelope, headers: dict[str, str] | None = None, *, topic: str | None = None
) -> dict[str, Any]:
    """The outbox row for an event; `topic` overrides the catalog's (replays, tests)."""
    return {
        "topic": topic or event.topic,
        "key": event.key,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "value": event.to_bytes(),
        "headers": orjson.dumps(headers or {}).decode(),
    }


OUTBOX_COLUMNS = (
    ("topic", "text"),
    ("key", "text"),
    ("event_id", "uuid"),
    ("event_type", "text"),
    ("value", "bytea"),
    ("headers", "jsonb"),
)


async def enqueue(conn: AsyncConnection, *events: Envelope) -> None:
    """Add events to the outbox inside the caller's open transaction, in one statement; the
    relay publishes them in this order."""
    if len(events) == 1:
        await conn.execute(_INSERT, outbox_row(events[0]))
    elif events:
        await insert_many(
            conn,
            "outbox",
            OUTBOX_COLUMNS,
            outbox_tuples(events),
        )


# The outbox rows of a statement of one's own making (`ccshared.db.one_statement`), with
# `outbox_params` for its parameters: events written in the same round trip as the change
# they announce. Leave the part out when there are no events: an empty INSERT still fires
# the NOTIFY trigger and wakes every relay.
OUTBOX_PART = ("events", insert_from_arrays("outbox", OUTBOX_COLUMNS, prefix="e_"))


def outbox_params(events: Sequence[Envelope]) -> dict[str, list[Any]]:
    return array_params(OUTBOX_COLUMNS, outbox_tuples(events), prefix="e_")


def outbox_tuples(events: Sequence[Envelope]) -> list[tuple[Any, ...]]:
    """Outbox rows in OUTBOX_COLUMNS order, for `insert_from_arrays` in a statement of one's
    own making."""
    return [(e.topic, e.key, e.event_id, e.event_type, e.to_bytes(), "{}") for e in events]


def kafka_headers(row: asyncpg.Record) -> list[tuple[str, bytes]]:
    headers = [
        ("event_type", row["event_type"].encode()),
        ("event_id", str(row["event_id"]).encode()),
    ]
    extra = row["headers"]
    if isinstance(extra, str):
        extra = orjson.loads(extra)
    for name, value in (extra or {}).items():
        headers.append((str(name), str(value).encode()))
    return headers


@functools.lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client and aiokafka's
    `send`) gives a key; cached, since one customer's or ticket's events come in runs."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


async def publish_rows(
    producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record], *, topic_prefix: str = ""
) -> None:
    """Publish outbox rows, in order per partition, and wait until Kafka has them all; each
    to its topic with `topic_prefix` before the name.

    Rows are packed into one record batch per partition (`send_batch`) instead of going through
    `send` one by one: that costs about half the CPU per event, and the relay is on the hot
    path of every service. Keys are partitioned as `send` would partition them."""
    open_batches: dict[tuple[str, int], BatchBuilder] = {}
    partitions: dict[str, int] = {}
    futures = []
    for row in rows:
        topic = topic_prefix + row["topic"]
        count = partitions.get(topic)
        if count is None:
            count = partitions[topic] = len(await producer.partitions_for(topic))
        key = row["key"].encode()
        where = (topic, partition_for(key, count))
        batch = open_batches.get(where)
        if batch is None:
            batch = open_batches[where] = producer.create_batch()
        record = {"key": key, "value": bytes(row["value"]), "headers": kafka_headers(row)}
        if batch.append(timestamp=None, **record) is None:  # full: send it, start another
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=where[1]))
            batch = open_batches[where] = producer.create_batch()
            batch.append(timestamp=None, **record)  # a batch's first record always fits
    for (topic, partition), batch in open_batches.items():
        # Closed: complete, so the producer sends it at once instead of holding it open for
        # `linger_ms` in case more records come (the relay's batches are whole already).
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    # Every delivery is awaited (none left unretrieved), then the first failure raised.
    for outcome in await asyncio.gather(*futures, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    failures: int = 0
    vacuums: int = 0
    is_leader: bool = False
    last_publish_at: float | None = None


class OutboxRelay:
    """Publishes a service's outbox to Kafka; run it as one task per service process."""

    def __init__(
        self,
        dsn: str,
        producer_factory: Callable[[], AIOKafkaProducer],
        *,
        name: str = "outbox-relay",
        batch_size: int = 500,
        poll_interval_s: float = 2.0,
        max_backoff_s: float = 10.0,
        linger_s: float = 0.0,
        vacuum_every: int = 0,
        topic_prefix: str = "",
    ) -> None:
        self._dsn = dsn
        self.topic_prefix = topic_prefix
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self.name = name
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        # After a partial batch, wait this long so that several commits' rows go out together:
        # fewer round trips and Kafka requests per event, for a few ms of publish latency.
        self.linger_s = linger_s
        # Published rows are deleted; every this many, the relay vacuums the table so that the
        # dead rows do not pile up until autovacuum's next visit (0: never).
        self.vacuum_every = vacuum_every
        self._deleted_since_vacuum = 0
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Finish the batch in flight (bounded by grace_s), then close."""
        self._stopping.set()
        self._wake.set()
        await finish_or_cancel(self._task, grace_s)
        await self._close_producer()

    def wake(self) -> None:
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": self.name}
                )
                await self._lead_and_drain(conn)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage
                self.stats.failures += 1
                self.stats.is_leader = False
                log.warning("outbox relay error, retrying in %.1fs: %s", backoff, exc)
                await self._close_producer()
                await self._sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)

    async def _lead_and_drain(self, conn: asyncpg.Connection) -> None:
        while not self._stopping.is_set():
            if not self.stats.is_leader:
                self.stats.is_leader = bool(
                    await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK)
                )
                if not self.stats.is_leader:
                    # Another replica publishes. Not woken by NOTIFY: on a busy outbox that
                    # would be a lock attempt per committed transaction, for nothing.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.poll_interval_s)
                    continue
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                log.info("outbox relay is leader")
            self._wake.clear()
            published = await self.drain_once(conn)
            if published == 0:
                # Rows that are committed but above the settled horizon were announced by a
                # NOTIFY that has been used up: look again soon rather than at the next poll.
                held_back = await conn.fetchval(_ANY_LEFT)
                await self._sleep(_HELD_BACK_RETRY_S if held_back else self.poll_interval_s)
            elif published < self.batch_size and self.linger_s > 0:
                await asyncio.sleep(self.linger_s)

    async def drain_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of settled rows; returns how many were published."""
        rows = await conn.fetch(_FETCH_SETTLED, self.batch_size)
        if not rows:
            return 0
        producer = await self._ensure_producer()
        try:
            await publish_rows(producer, rows, topic_prefix=self.topic_prefix)
        except Exception:
            # Whatever state the producer is in (e.g. OutOfOrderSequenceNumber) is not trusted.
            await self._close_producer()
            raise
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        self.stats.published += len(rows)
        self.stats.batches += 1
        self.stats.last_publish_at = time.time()
        self._deleted_since_vacuum += len(rows)
        if self.vacuum_every and self._deleted_since_vacuum >= self.vacuum_every:
            await self._vacuum(conn)
        return len(rows)

    async def _vacuum(self, conn: asyncpg.Connection) -> None:
        """A plain VACUUM: inserts and deletes go on; SKIP_LOCKED returns at once if autovacuum
        is already at it, and TRUNCATE false keeps it from trying for the exclusive lock that
        giving back the table's empty tail pages takes (it retries that for seconds, stalling
        the services' inserts). On a table kept small it takes milliseconds."""
        self._deleted_since_vacuum = 0
        await conn.execute("VACUUM (SKIP_LOCKED, TRUNCATE false) outbox")
        self.stats.vacuums += 1

    # -- helpers ------------------------------------------------------------------------------

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except Exception:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=5)


async def pending_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one())
