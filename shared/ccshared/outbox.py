"""Transactional outbox: write events with the state change, publish them after commit.

Writers call `enqueue` (or build `outbox_rows` into their own statement) inside the transaction
that changes state. One `OutboxRelay` per service database (elected by an advisory lock, so extra
replicas stand by) publishes committed rows to Kafka in id order and deletes them: at least once,
so consumers dedupe by event id.

The trap this avoids: ids from a sequence become visible out of commit order. A relay that reads
`id > last_seen` skips a row whose transaction took its id early but committed late. The relay
here reads only rows whose transaction id is below a *horizon*: the smallest id of the
transactions still in progress that may belong to this database (and so write to this outbox).
It also never passes a committed row that is still above that horizon, so rows of one key go out
in the order they were written.

The horizon is narrower than the cluster's `pg_snapshot_xmin`, which any transaction in any
database holds back (another service's, an idle-in-transaction session, a report): a transaction
of another database delays nobody's publishing. The argument, for one statement of the relay
(its snapshot S, then one read of the backends' status B, both in `_FETCH_SETTLED`):

- What the horizon is for: a row R must not go out while a transaction X that is in progress in S
  holds an outbox id below R's. R's transaction committed before S; X's row is invisible, its id
  unknown. The relay holds back every visible row whose txid is >= X's xid, as it always has.
- Only transactions in S's in-progress list (xip) can be held against: one that has no xid at S
  (none yet, or one at or above S's xmax) is invisible to the rule, before as now; see the last
  point for what that leaves.
- A transaction X of xip is left out only on positive evidence that it belongs to another
  database, which has its own outbox and its own sequence: in B, the backend showing X's xid is
  connected to another database (a backend's database never changes), or X is a prepared
  transaction of another database (`pg_prepared_xacts.database`). B is read after S, and X's
  backend was running X at S, so the status B shows for X's xid is that backend's: a slot
  reused between the two reads serves a backend that started after S, whose xid is above S's
  xmax and not in xip.
- Everything without that evidence holds back, as with the cluster xmin: a transaction that ended
  between S and B, a prepared transaction of this database (it has no backend), a background
  process, a backend whose status is not shown. So every transaction of this database,
  whether or not it has written to the outbox yet (this database's transactions that have not
  could be told apart only from the lock table, too costly on every poll), holds back exactly
  what the cluster-xmin rule held back for it: the ordering guarantees are unchanged; only the
  delays caused by other databases' transactions are gone.
- Replicas: the relay runs on the primary (it deletes what it publishes); a hot standby's
  feedback xmin is not in xip. Several relay processes of one service are one publisher: the
  advisory lock elects it. The backends' status is read only when some visible row is above the
  cluster xmin (otherwise nothing is held back whoever is running): under load that is most
  polls, about 0.15 ms of the database's CPU each.
- What the rule never promised, before or now: a transaction whose outbox id came from the
  sequence before it had an xid (its first write is the outbox INSERT: the identity is computed,
  then `txid`'s default assigns the xid, microseconds apart in one statement), or whose xid is at
  or above S's xmax while it runs (xids taken after the last one that completed), may have a
  concurrent transaction's higher id published before its own. Such transactions overlap in
  time, so no order between them was observable; a key's writers that serialise on a row lock
  take their ids in that order.

Nothing one row carries may stop the others: a row Kafka refuses for good (larger than the
producer's or the broker's limit, an invalid topic name, a topic this service may not write) is
moved to `outbox_parked` with the error, logged and counted, and the rows after it are
published. Rows of the same key after a parked row still go: holding a key's later events
behind a row that can never be published would hold them for ever, and the operator who
re-publishes the parked row (`python -m ccshared.outbox_admin`, `make outbox`) decides what its
late arrival means. Failures that may pass (the broker down, a timeout, a leader moving) keep
the batch in the outbox and it is tried again, whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared import tracing
from ccshared.db import array_columns, array_params, insert_from_arrays, insert_many
from ccshared.events.catalog import EVENT_TYPES
from ccshared.events.envelope import Envelope
from ccshared.metrics import EVENTS_PUBLISHED
from ccshared.tasks import finish_or_cancel

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox"
_RELAY_LOCK = 0x6363_6F62  # "ccob"
_HELD_BACK_RETRY_S = 0.02

_INSERT = text(
    "INSERT INTO outbox (topic, key, event_id, event_type, value, headers) "
    "VALUES (:topic, :key, :event_id, :event_type, :value, CAST(:headers AS jsonb))"
)

# Rows every transaction that may write here has settled, and none past the first
# committed-but-unsettled row: the visible rows below the smallest id a not-yet-settled
# transaction (txid >= the horizon) wrote are exactly the settled ones, so no txid filter is
# needed on them. Written so that the planner walks the primary key in order and stops after
# $1 rows: an index scan, which also marks the entries of rows deleted earlier as dead so later
# scans skip them (a bitmap scan over the whole index, which the planner picked while it had a
# txid filter to apply, revisited every deleted row on every poll until the next vacuum).
#
# The horizon (see the module's docstring for why it is enough): the smallest transaction id in
# progress in this statement's snapshot that may belong to this database, or the snapshot's
# xmax when there is none. Another database's transactions are known from the backends' status
# (pg_stat_get_activity: one row per backend, its database and its xid) and from
# pg_prepared_xacts; anything not known to be another database's counts. Read only when a
# visible row is above the cluster-wide xmin (else nothing is held back, whoever is running).
# The lock table would also tell this database's transactions that have not written to the
# outbox, but reading it costs about 0.6 ms per poll with a thousand locks held in the cluster
# (the backends' status about 0.15 ms), on every poll of every relay.
_FETCH_SETTLED = """
WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
elsewhere AS (
    SELECT a.backend_xid AS xid FROM pg_stat_get_activity(NULL) a
    WHERE a.backend_xid IS NOT NULL
      AND a.datid <> (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    UNION ALL
    SELECT p.transaction FROM pg_prepared_xacts p WHERE p.database <> current_database()
),
horizon AS MATERIALIZED (
    SELECT CASE
        WHEN NOT EXISTS (SELECT 1 FROM outbox u WHERE u.txid >= pg_snapshot_xmin(snap.s))
        THEN pg_snapshot_xmin(snap.s)
        ELSE COALESCE(
            (SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x
             WHERE x::xid NOT IN (SELECT e.xid FROM elsewhere e)),
            pg_snapshot_xmax(snap.s))
    END AS h
    FROM snap
)
SELECT o.id, o.topic, o.key, o.event_id, o.event_type, o.value, o.headers
FROM outbox o
WHERE o.id < COALESCE(
    (SELECT min(u.id) FROM outbox u WHERE u.txid >= (SELECT h FROM horizon)),
    9223372036854775807)
ORDER BY o.id
LIMIT $1
"""

# Anything left (held back behind an unsettled row)? min() reads the primary key's first live
# entry; EXISTS would scan the heap from the start, through every row deleted since the last
# vacuum.
_ANY_LEFT = "SELECT min(id) IS NOT NULL FROM outbox"

# Rows Kafka refuses for good leave the outbox for outbox_parked, with the error, in one step.
_PARK = """
WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($1::bigint[])
    RETURNING id, topic, key, event_id, event_type, value, headers, created_at
)
INSERT INTO outbox_parked (id, topic, key, event_id, event_type, value, headers, created_at, error)
SELECT m.id, m.topic, m.key, m.event_id, m.event_type, m.value, m.headers, m.created_at, e.error
FROM moved m JOIN unnest($1::bigint[], $2::text[]) AS e(id, error) ON e.id = m.id
"""


def outbox_row(
    event: Envelope, headers: dict[str, str] | None = None, *, topic: str | None = None
) -> dict[str, Any]:
    """The outbox row for an event; `topic` overrides the catalog's (replays, tests). The
    trace context, when traced, goes in its headers (ccshared.tracing)."""
    headers = tracing.with_trace(headers, event.correlation_id)
    return {
        "topic": topic or event.topic,
        "key": event.key,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "value": event.to_bytes(),
        "headers": orjson.dumps(headers).decode(),
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


def outbox_part(*, first_param: int | None = None, where: str = "") -> tuple[str, str]:
    """The outbox rows of a statement of one's own making (`ccshared.db.one_statement`):
    events written in the same round trip as the change they announce. Its parameters come
    from `outbox_params` (SQLAlchemy's named parameters) or, with `first_param`, from
    `outbox_arrays` as asyncpg's numbered parameters `$first_param`... (six of them, in
    OUTBOX_COLUMNS order). `where` keeps only the rows that qualify (see
    `ccshared.db.insert_from_arrays`: `u.ord` is a row's 1-based position). Leave the part
    out when there are no events: an empty INSERT still fires the NOTIFY trigger and wakes
    every relay."""
    sql = insert_from_arrays(
        "outbox", OUTBOX_COLUMNS, prefix="e_", first_param=first_param, where=where
    )
    return ("events", sql)


OUTBOX_PART = outbox_part()

# One outbox row in OUTBOX_COLUMNS order: (topic, key, event_id, event_type, value, headers).
OutboxTuple = tuple[str, str, uuid.UUID, str, bytes, str]


def outbox_params(
    events: Sequence[Envelope], parents: Mapping[uuid.UUID, str] | None = None
) -> dict[str, list[Any]]:
    return array_params(OUTBOX_COLUMNS, outbox_tuples(events, parents), prefix="e_")


def outbox_arrays(rows: Sequence[OutboxTuple]) -> list[list[Any]]:
    """The numbered parameters of `outbox_part(first_param=...)`, for rows from
    `outbox_tuples` or `outbox_tuple`."""
    return array_columns(OUTBOX_COLUMNS, rows)


def outbox_tuples(
    events: Sequence[Envelope], parents: Mapping[uuid.UUID, str] | None = None
) -> list[OutboxTuple]:
    """Outbox rows in OUTBOX_COLUMNS order, for `insert_from_arrays` in a statement of one's
    own making. `parents`: event id → the `traceparent` it carries, for events written for
    many contacts at once (each continuing its own contact's trace); the others carry their
    correlation id's (ccshared.tracing)."""
    return [
        (
            e.topic,
            e.key,
            e.event_id,
            e.event_type,
            e.to_bytes(),
            orjson.dumps({tracing.TRACEPARENT: parents[e.event_id]}).decode()
            if parents and e.event_id in parents
            else tracing.headers_json(e.correlation_id),
        )
        for e in events
    ]


def outbox_tuple(
    event_type: str, key: str, event_id: uuid.UUID, value: bytes, headers: str = "{}"
) -> OutboxTuple:
    """The outbox row of an event already serialised (a hot path that builds the envelope's
    bytes itself); its topic is the catalog's for the event type. `headers`: the JSON of its
    Kafka headers (`ccshared.tracing.headers_json()` where the request is traced)."""
    return (EVENT_TYPES[event_type].topic, key, event_id, event_type, value, headers)


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


# Errors about a record or its topic, not about the producer or the cluster: the same row sent
# again gets the same answer, so it is parked instead of retried. Producer-wide refusals
# (ClusterAuthorizationFailed, UnsupportedVersion, ...) are not here: parking would empty the
# whole outbox into the parked table, one row at a time.
ROW_REFUSALS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
    PolicyViolationError,
)

_TOPIC_REFUSALS = (InvalidTopicError, TopicAuthorizationFailedError)

# Kafka's rule for topic names. A row for any other name is refused by us: the producer would
# wait out its metadata timeout on it and fail with a retriable error, every time.
_LEGAL_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DEFAULT_MAX_REQUEST_SIZE = 1_048_576  # aiokafka's default max_request_size


class RefusedByKafka(Exception):
    """Kafka refused one or more records of `rows` for good (`error`), and every other failure
    among them followed from that one (an idempotent producer's sequence numbers for a
    partition are spent once a batch of it is refused). Which rows were at fault is found by
    sending them one by one."""

    def __init__(self, rows: Sequence[asyncpg.Record], error: BaseException) -> None:
        super().__init__(f"{len(rows)} row(s) refused by Kafka: {describe_error(error)}")
        self.rows = list(rows)
        self.error = error


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def refusal_before_sending(row: asyncpg.Record, *, topic: str, max_request_size: int) -> str | None:
    """Why Kafka would refuse the row for good, when that can be known without sending it.
    On the relay's hot path: the exact size is worked out only for a row that might be near
    the limit (4 bytes a character bounds the UTF-8 of key and headers; 1 KiB the framing)."""
    if _illegal_topic(topic):
        return f"InvalidTopicError: {topic!r} is not a valid Kafka topic name"
    extra = row["headers"]
    extra_chars = len(extra) if isinstance(extra, str) else len(orjson.dumps(extra or {}))
    text_chars = len(row["key"]) + len(row["event_type"]) + extra_chars + 64
    if len(row["value"]) + 4 * text_chars + 1024 <= max_request_size:
        return None
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        row["key"].encode(), bytes(row["value"]), kafka_headers(row)
    )
    if size > max_request_size:
        return (
            f"MessageSizeTooLargeError: the record is {size} bytes, over the producer's "
            f"max_request_size of {max_request_size}"
        )
    return None


@functools.lru_cache(maxsize=1024)
def _illegal_topic(topic: str) -> bool:
    return not _LEGAL_TOPIC.match(topic) or topic in {".", ".."}


def max_request_size(producer: AIOKafkaProducer) -> int:
    """The producer's largest request, which is also its largest record (aiokafka checks it in
    `send`, not in `send_batch`)."""
    return int(getattr(producer, "_max_request_size", _DEFAULT_MAX_REQUEST_SIZE))


async def publish_rows(
    producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record], *, topic_prefix: str = ""
) -> None:
    """Publish outbox rows, in order per partition, and wait until Kafka has them all; each
    to its topic with `topic_prefix` before the name.

    Rows are packed into one record batch per partition (`send_batch`) instead of going through
    `send` one by one: that costs about half the CPU per event, and the relay is on the hot
    path of every service. Keys are partitioned as `send` would partition them.

    Raises `RefusedByKafka` with the rows of the record batches that Kafka refused for good
    (the caller finds the culprits among them), anything else as it came."""
    open_batches: dict[tuple[str, int], BatchBuilder] = {}
    members: dict[tuple[str, int], list[asyncpg.Record]] = {}  # the rows of each open batch
    partitions: dict[str, int] = {}
    refused_topics: dict[str, BaseException] = {}
    refused: list[asyncpg.Record] = []
    sent: list[tuple[list[asyncpg.Record], asyncio.Future[Any]]] = []
    for row in rows:
        topic = topic_prefix + row["topic"]
        if topic in refused_topics:
            refused.append(row)
            continue
        count = partitions.get(topic)
        if count is None:
            try:
                count = partitions[topic] = len(await producer.partitions_for(topic))
            except ROW_REFUSALS as exc:  # e.g. not authorized to describe the topic
                refused_topics[topic] = exc
                refused.append(row)
                continue
        key = row["key"].encode()
        where = (topic, partition_for(key, count))
        batch = open_batches.get(where)
        if batch is None:
            batch = open_batches[where] = producer.create_batch()
        record = {"key": key, "value": bytes(row["value"]), "headers": kafka_headers(row)}
        if batch.append(timestamp=None, **record) is None:  # full: send it, start another
            batch.close()
            future = await producer.send_batch(batch, topic, partition=where[1])
            sent.append((members.pop(where), future))
            batch = open_batches[where] = producer.create_batch()
            batch.append(timestamp=None, **record)  # a batch's first record always fits
        members.setdefault(where, []).append(row)
    for where, batch in open_batches.items():
        # Closed: complete, so the producer sends it at once instead of holding it open for
        # `linger_ms` in case more records come (the relay's batches are whole already).
        batch.close()
        future = await producer.send_batch(batch, where[0], partition=where[1])
        sent.append((members.pop(where), future))
    # Every delivery is awaited (none left unretrieved), then the failures sorted out.
    outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    first_refusal = next(iter(refused_topics.values()), None)
    knock_on: BaseException | None = None
    failure: BaseException | None = None
    for (batch_rows, _), outcome in zip(sent, outcomes, strict=True):
        if isinstance(outcome, ROW_REFUSALS):
            first_refusal = first_refusal or outcome
            refused.extend(batch_rows)
        elif isinstance(outcome, OutOfOrderSequenceNumber):
            # After a refused batch, an idempotent producer's next batches of that partition
            # fail this way: their rows are suspects with the refused ones.
            knock_on = knock_on or outcome
            refused.extend(batch_rows)
        elif isinstance(outcome, BaseException):
            failure = failure or outcome
    if failure is not None:
        raise failure  # may pass: the whole batch is tried again
    if first_refusal is not None:
        raise RefusedByKafka(sorted(refused, key=lambda r: int(r["id"])), first_refusal)
    if knock_on is not None:
        raise knock_on


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    failures: int = 0
    parked: int = 0  # rows Kafka refused for good, moved to outbox_parked
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
        service: str = "",
    ) -> None:
        self._dsn = dsn
        self.service = service or name  # the `service` label of its metrics
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
        """Publish one batch of settled rows, parking those Kafka refuses for good; returns how
        many rows left the outbox (published or parked)."""
        rows = await conn.fetch(_FETCH_SETTLED, self.batch_size)
        if not rows:
            return 0
        producer = await self._ensure_producer()
        limit = max_request_size(producer)
        refused: dict[int, str] = {}
        sendable = []
        for row in rows:
            why = refusal_before_sending(
                row, topic=self.topic_prefix + row["topic"], max_request_size=limit
            )
            if why is None:
                sendable.append(row)
            else:
                refused[row["id"]] = why
        try:
            try:
                await publish_rows(producer, sendable, topic_prefix=self.topic_prefix)
            except RefusedByKafka as exc:
                # The producer's sequence numbers for those partitions are spent: a new one
                # sends the suspects one by one to find the rows at fault.
                await self._close_producer()
                refused.update(await self._find_refused(exc.rows, exc.error))
        except Exception:
            # Whatever state the producer is in (e.g. OutOfOrderSequenceNumber) is not trusted.
            await self._close_producer()
            await self._park(conn, rows, refused)  # known for good; the rest is tried again
            raise
        await self._park(conn, rows, refused)
        published = [r["id"] for r in rows if r["id"] not in refused]
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", published)
        self.stats.published += len(published)
        self._count_published(rows, refused)
        self.stats.batches += 1
        self.stats.last_publish_at = time.time()
        self._deleted_since_vacuum += len(rows)
        if self.vacuum_every and self._deleted_since_vacuum >= self.vacuum_every:
            await self._vacuum(conn)
        return len(rows)

    def _count_published(self, rows: Sequence[asyncpg.Record], refused: dict[int, str]) -> None:
        by_type: dict[str, int] = {}
        for row in rows:
            if row["id"] not in refused:
                by_type[row["event_type"]] = by_type.get(row["event_type"], 0) + 1
        for event_type, n in by_type.items():
            EVENTS_PUBLISHED.labels(self.service, event_type).inc(n)

    async def _find_refused(
        self, suspects: Sequence[asyncpg.Record], error: BaseException
    ) -> dict[int, str]:
        """Send the rows one at a time, in order; the errors of those Kafka refuses. A refusal
        spends the producer (see `RefusedByKafka`): the next row gets a new one."""
        log.warning(
            "Kafka refused a record batch (%s); sending its %d row(s) one by one",
            describe_error(error),
            len(suspects),
        )
        refused: dict[int, str] = {}
        refused_topics: dict[str, str] = {}  # refusals of the topic, not of one record
        for row in suspects:
            if row["topic"] in refused_topics:
                refused[row["id"]] = refused_topics[row["topic"]]
                continue
            producer = await self._ensure_producer()
            try:
                await publish_rows(producer, [row], topic_prefix=self.topic_prefix)
            except RefusedByKafka as exc:
                refused[row["id"]] = describe_error(exc.error)
                if isinstance(exc.error, _TOPIC_REFUSALS):
                    refused_topics[row["topic"]] = refused[row["id"]]
                await self._close_producer()
        return refused

    async def _park(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], refused: dict[int, str]
    ) -> None:
        if not refused:
            return
        ids = list(refused)
        await conn.execute(_PARK, ids, [refused[i] for i in ids])
        self.stats.parked += len(ids)
        for row in rows:
            if row["id"] in refused:
                log.error(
                    "outbox row parked, Kafka refuses it for good: id=%d event_id=%s "
                    "event_type=%s topic=%s key=%s size=%d: %s",
                    row["id"],
                    row["event_id"],
                    row["event_type"],
                    row["topic"],
                    row["key"],
                    len(row["value"]),
                    refused[row["id"]],
                )

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
        # Told to stop: no sleep at all. The wake-up `stop()` sets can be cleared by the loop
        # before it sleeps (stopped while it was taking the leadership, which clears `_wake`
        # before the first drain), and the stop would then wait out a whole poll interval.
        if self._stopping.is_set():
            return
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
