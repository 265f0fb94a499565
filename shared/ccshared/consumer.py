"""Idempotent Kafka consumer: each event has its effect once, whatever Kafka redelivers.

For every message the handler runs inside one database transaction together with the insert of
the event id into `processed_events`; a redelivered event finds its id there and is skipped.
Offsets are committed (auto-commit is off) only after the messages before them are processed, so
a crash or `stop()` never commits past unprocessed work. A handler that keeps failing is retried
with backoff, then its message goes to the topic's dead-letter twin with the error attached and
the partition moves on. Infrastructure failures (database or Kafka unreachable) are not the
message's fault: those are retried until they pass or the consumer stops, never dead-lettered.
Offsets are committed in the background, so the next fetch is not held up by the broker's round
trip: the newest offset of each partition is committed by one task, one commit at a time (a
commit lost in a crash only means redeliveries, which are deduped). On a rebalance the listener
waits for the batch in flight to finish and its offsets to be committed before the partitions
are handed over; `stop()` commits what is pending before leaving the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaError
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import Span, Tracer
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared import tracing
from ccshared.conflicts import is_transient_conflict
from ccshared.events.catalog import DLQ_SUFFIX
from ccshared.events.envelope import Envelope, EventDecodeError, decode_event
from ccshared.kafka import PLAINTEXT, KafkaSecurity
from ccshared.logging import correlation_id, redact
from ccshared.metrics import CONSUMER_BATCH_DURATION
from ccshared.tasks import finish_or_cancel

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, Envelope, BaseModel], Awaitable[None]]
# Gives a whole batch of first-time events its effect at once, in order, in the caller's
# transaction (set-based writes instead of a round trip per event and statement).
BatchHandler = Callable[[AsyncConnection, list[tuple[Envelope, BaseModel]]], Awaitable[None]]

_MARK_PROCESSED = text(
    "INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
_MARK_MANY_PROCESSED = text(
    "INSERT INTO processed_events (consumer, event_id) "
    "SELECT :consumer, e FROM unnest(CAST(:event_ids AS uuid[])) AS e "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


def each_event(
    handler: Handler,
    around: Callable[[AsyncConnection], AbstractAsyncContextManager[None]] | None = None,
) -> BatchHandler:
    """A batch handler made of a per-event handler: each event in order, with its correlation
    id, in the batch's one transaction (no savepoint each), all inside `around(conn)` if
    given (e.g. to write once, at the end, what every event adds to shared rows)."""

    async def handle(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        async with around(conn) if around is not None else contextlib.nullcontext():
            for envelope, payload in events:
                token = correlation_id.set(envelope.correlation_id or str(envelope.event_id))
                try:
                    await handler(conn, envelope, payload)
                finally:
                    correlation_id.reset(token)

    return handle


def one_event(batch: BatchHandler) -> Handler:
    """The per-event handler of a batch handler: the event as a batch of one (the careful
    path a failed batch falls back to applies each event this way)."""

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        await batch(conn, [(envelope, payload)])

    return handle


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it at once."""


# SQLSTATEs of a server that is starting up, shutting down or full (class 08, connection
# exceptions, counts too). SQLAlchemy's asyncpg dialect wraps these as a plain DBAPIError, not an
# OperationalError, so the class alone does not tell.
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, through SQLAlchemy's and asyncpg's wrappers."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
        orig = seen.orig if isinstance(seen, sa_exc.DBAPIError) else None
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return None


def is_transient(exc: BaseException) -> bool:
    """Failures of the infrastructure rather than of the message (a lost race with another
    transaction, too: a deadlock is nobody's fault and goes away when done again)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if is_transient_conflict(exc):
        return True
    code = _sqlstate(exc)
    if code is not None and (code.startswith("08") or code in _TRANSIENT_SQLSTATES):
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | OSError
        | TimeoutError
        | KafkaConnectionError
        | ConnectionError,
    )


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    commit_failures: int = 0
    skipped: int = 0
    assigned: bool = False
    joined: bool = False


class IdempotentConsumer:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        handler: Handler,
        producer_factory: Callable[[], AIOKafkaProducer],
        client_id: str | None = None,
        max_attempts: int = 5,
        retry_base_s: float = 0.2,
        retry_max_s: float = 10.0,
        max_batch: int = 200,
        event_types: frozenset[str] | None = None,
        after_commit: Callable[[Envelope], None] | None = None,
        offset_reset: str = "earliest",
        batch_handler: BatchHandler | None = None,
        security: KafkaSecurity = PLAINTEXT,
        tracer: Tracer | None = None,
        commit_interval_s: float = 0.2,
        patience_ms: int = 0,
    ) -> None:
        self.engine = engine
        self.security = security
        # A span per record taken, continuing the trace in its headers (ccshared.tracing).
        self.tracer = tracer
        self._timers: dict[str, Any] = {}
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        # Optional fast path: a fetched batch goes through it in one transaction; if anything
        # in it fails, the batch is taken again through `handler`, event by event.
        self.batch_handler = batch_handler
        self._producer_factory = producer_factory
        self._dlq_producer: AIOKafkaProducer | None = None
        self.client_id = client_id or group_id
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_batch = max_batch
        # Events of other types are passed over without a transaction or a dedupe row.
        self.event_types = event_types
        # Runs once an event's effect has committed (e.g. to wake a loop that acts on it).
        self.after_commit = after_commit
        self.offset_reset = offset_reset
        self.stats = ConsumerStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._inflight = asyncio.Lock()
        # Offsets processed but not yet committed, newest per partition, and the task
        # committing them (`_commit_later`).
        self._to_commit: dict[TopicPartition, int] = {}
        # True while the loop waits in `getmany` (nothing taken yet): `stop()` need not wait.
        self._fetching = False
        self._committer: asyncio.Task[None] | None = None
        # Offsets are committed at most once per interval (a stop or a rebalance commits at
        # once): a commit per fetch was a round trip and a write to the broker's offsets log
        # for every handful of records. What a crash leaves uncommitted is read again and
        # passed over (processed_events, or its event type).
        self.commit_interval_s = commit_interval_s
        # A consumer nobody waits on lets the broker hold a fetch until it is fuller (or this
        # many ms passed): fewer, larger fetches and transactions. 0: a fetch returns as soon
        # as any record arrives.
        self.patience_ms = patience_ms
        self._last_commit = 0.0
        self._commit_now = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,  # auto-commit on stop() can commit unprocessed offsets
            auto_offset_reset=self.offset_reset,
            max_poll_interval_ms=300_000,
            session_timeout_ms=30_000,
            heartbeat_interval_ms=3_000,
            **_fetch_options(self.patience_ms),
            **self.security.client_options(),
        )
        self._consumer.subscribe(self.topics, listener=_FinishInFlight(self))
        try:
            await self._consumer.start()
        except BaseException:
            # A failed (or cancelled) start is retried with a new client: close this one.
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None
            raise
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group_id}")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Finish the message in flight (bounded by grace_s), commit, leave the group."""
        self._stopping.set()
        if self._fetching and self._task is not None:
            # Idle in a fetch (a long poll of up to 500 ms): nothing in flight to finish.
            # Records it may have brought are not processed and their offsets not committed,
            # so they are read again by whoever holds the partition next.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await finish_or_cancel(self._task, grace_s)
        if self._consumer is not None:
            try:
                # Bounded: with the broker unreachable a commit retries until the client
                # closes, and only `stop()` below closes it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace_s):
                        await self.flush_commits()
            finally:
                await self._consumer.stop()
        if self._dlq_producer is not None:
            with contextlib.suppress(Exception):
                await self._dlq_producer.stop()

    def assignment(self) -> set[TopicPartition] | None:
        """The partitions this member holds now (maybe none); None before it joined its group."""
        if self._consumer is None or not self.stats.joined:
            return None
        return set(self._consumer.assignment())

    def partition_count(self, topic: str) -> int | None:
        if self._consumer is None:
            return None
        partitions = self._consumer.partitions_for_topic(topic)
        return len(partitions) if partitions else None

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        # The spans this consumer took, by correlation id, apart from the service's other
        # consumers': an event one writes is a child of its own record, even when another
        # consumer is taking a record of the same correlation id at that moment. They are read
        # only while their records are handled (a fetch: at most max_batch), so a few batches'
        # worth is kept, not a service's 10,000 per consumer (~3 kB a span).
        tracing.own_memory(limit=max(1_000, 5 * self.max_batch))
        while not self._stopping.is_set():
            self._fetching = True
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=self.max_batch)
            except KafkaError as exc:
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(1)
                continue
            finally:
                self._fetching = False
            self.stats.assigned = bool(consumer.assignment())
            # Per partition, a batch is tried at once again only if the whole fetch (several
            # partitions) failed: the failing event may be in another partition's records.
            retry_bulk = len(batches) > 1
            started = time.perf_counter()
            if self.batch_handler is not None and batches:
                async with self._inflight:
                    if await self._apply_fetch_in_bulk(consumer, batches):
                        self._time({tp.topic for tp in batches}, started)
                        continue
            for tp, records in batches.items():
                if self._stopping.is_set():
                    return
                async with self._inflight:
                    if tp not in consumer.assignment():
                        continue  # revoked while we fetched; the new owner reads them
                    done = await self._process_partition_batch(tp, records, bulk=retry_bulk)
                    if done != records[-1].offset:
                        # Stopped part-way: re-read from the first unprocessed one next time.
                        consumer.seek(tp, (done + 1) if done is not None else records[0].offset)
            if batches:
                self._time({tp.topic for tp in batches}, started)

    def _time(self, topics: set[str], started: float) -> None:
        """The fetch's processing time, once for each topic it brought records of."""
        took = time.perf_counter() - started
        for topic in topics:
            timer = self._timers.get(topic)
            if timer is None:
                timer = self._timers[topic] = CONSUMER_BATCH_DURATION.labels(self.group_id, topic)
            timer.observe(took)

    def _span(self, record: ConsumerRecord, envelope: Envelope) -> Span | None:
        if self.tracer is None:
            return None
        return tracing.consume_span(
            self.tracer,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            headers=record.headers,
            event_type=envelope.event_type,
            event_id=str(envelope.event_id),
            # As the handlers set it (and so the events they write carry it).
            correlation_id=envelope.correlation_id or str(envelope.event_id),
            group=self.group_id,
        )

    async def _apply_fetch_in_bulk(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord]],
    ) -> bool:
        """Everything one fetch brought, from all its partitions, through the batch handler
        in one transaction, then one offset commit for all: the per-partition transactions and
        commits cost more than the work at a steady trickle. Each partition's records keep
        their order (events of one key are on one partition). False: nothing was applied and
        the caller goes partition by partition."""
        live = {tp: records for tp, records in batches.items() if tp in consumer.assignment()}
        if not live or self._stopping.is_set():
            return not live
        if not await self._apply_bulk([r for records in live.values() for r in records]):
            return False
        self._commit_later({tp: records[-1].offset + 1 for tp, records in live.items()})
        return True

    async def _process_partition_batch(
        self, tp: TopicPartition, records: list[ConsumerRecord], *, bulk: bool = True
    ) -> int | None:
        """Process in order; commit up to the last processed one, also when cancelled.

        Records are applied many to a transaction (each in its own savepoint, so each still
        has its effect and its dedupe mark together); the first one that fails there is taken
        alone through `_process`, with its retries and dead-lettering, then batching resumes.
        """
        done: int | None = None
        try:
            i = 0
            if bulk and self.batch_handler is not None and await self._apply_bulk(records):
                i, done = len(records), records[-1].offset
            while i < len(records) and not self._stopping.is_set():
                applied, failure = await self._apply_batch(records[i:])
                if applied:
                    i += applied
                    done = records[i - 1].offset
                if i >= len(records) or (applied and failure is None):
                    continue
                if not await self._process(records[i], earlier_failure=failure):
                    break
                done = records[i].offset
                i += 1
        finally:
            if done is not None:
                self._commit_later({tp: done + 1})
        return done

    async def _apply_batch(self, records: list[ConsumerRecord]) -> tuple[int, BaseException | None]:
        """Apply a prefix of `records` in one transaction. Returns how many, and the error of
        the record after them if its handler failed (it then goes the one-at-a-time path)."""
        applied: list[Envelope | None] = []
        failure: BaseException | None = None
        duplicates = skipped = 0
        spans: list[Span] = []
        try:
            async with self.engine.begin() as conn:
                for record in records:
                    if self._passes_over(record):
                        skipped += 1
                        applied.append(None)
                        continue
                    try:
                        envelope, payload = decode_event(record.value)
                    except EventDecodeError:
                        break
                    if (span := self._span(record, envelope)) is not None:
                        spans.append(span)
                    savepoint = await conn.begin_nested()
                    token = correlation_id.set(envelope.correlation_id or str(envelope.event_id))
                    try:
                        if not await self._apply_in(conn, envelope, payload):
                            duplicates += 1
                        await savepoint.commit()
                    except Exception as exc:  # noqa: BLE001 - retried alone by _process
                        await savepoint.rollback()
                        failure = exc
                        break
                    finally:
                        correlation_id.reset(token)
                    applied.append(envelope)
        except Exception as exc:  # noqa: BLE001 - e.g. the connection dropped: go one by one
            log.warning("batch of %d failed, taking them one at a time: %s", len(applied), exc)
            return 0, None
        finally:
            for span in spans:
                span.end()
        self.stats.skipped += skipped
        self.stats.duplicates += duplicates
        self.stats.processed += len(applied) - skipped - duplicates
        if self.after_commit is not None:
            for applied_event in applied:
                if applied_event is not None:
                    self.after_commit(applied_event)
        return len(applied), failure

    async def _apply_bulk(self, records: list[ConsumerRecord]) -> bool:
        """All of `records` through the batch handler in one transaction, with one dedupe
        insert for all; False (and no effect) if any record does not decode or anything fails,
        and the caller takes the records the careful way."""
        assert self.batch_handler is not None
        events: list[tuple[Envelope, BaseModel]] = []
        skipped = 0
        for record in records:
            if self._passes_over(record):
                skipped += 1
                continue
            try:
                events.append(decode_event(record.value))
            except EventDecodeError:
                return False
        spans: list[Span] = []
        if self.tracer is not None:
            taken = (r for r in records if not self._passes_over(r))
            spans = [s for r, (e, _) in zip(taken, events, strict=True) if (s := self._span(r, e))]
        fresh: list[tuple[Envelope, BaseModel]] = []
        try:
            async with self.engine.begin() as conn:
                if events:
                    marked = await conn.execute(
                        _MARK_MANY_PROCESSED,
                        {
                            "consumer": self.group_id,
                            "event_ids": [envelope.event_id for envelope, _ in events],
                        },
                    )
                    first_time = set(marked.scalars())
                    for envelope, payload in events:
                        if envelope.event_id in first_time:
                            first_time.discard(envelope.event_id)  # twice in one batch: once
                            fresh.append((envelope, payload))
                if fresh:
                    await self.batch_handler(conn, fresh)
        except Exception as exc:  # noqa: BLE001 - the careful path retries or dead-letters
            log.info("batch of %d not applied at once, going event by event: %s", len(events), exc)
            return False
        finally:
            for span in spans:
                span.end()
        self.stats.skipped += skipped
        self.stats.duplicates += len(events) - len(fresh)
        self.stats.processed += len(fresh)
        if self.after_commit is not None:
            for envelope, _ in fresh:
                self.after_commit(envelope)
        return True

    def _passes_over(self, record: ConsumerRecord) -> bool:
        if self.event_types is None:
            return False
        declared = dict(record.headers or ()).get("event_type")
        return declared is not None and declared.decode(errors="replace") not in self.event_types

    async def _process(
        self, record: ConsumerRecord, earlier_failure: BaseException | None = None
    ) -> bool:
        """Give the record its effect once, or dead-letter it. False only when stopping.
        `earlier_failure`: how its try in a batch failed, which counts as the first attempt."""
        if self._passes_over(record):
            self.stats.skipped += 1
            return True
        try:
            envelope, payload = decode_event(record.value)
        except EventDecodeError as exc:
            return await self._dead_letter(record, exc, attempts=1)
        token = correlation_id.set(envelope.correlation_id or str(envelope.event_id))
        span = self._span(record, envelope)
        try:
            attempt = 0
            if earlier_failure is not None:
                attempt = 1
                if isinstance(earlier_failure, PermanentError) or (
                    not is_transient(earlier_failure) and self.max_attempts <= 1
                ):
                    return await self._dead_letter(record, earlier_failure, attempts=1)
                self.stats.retries += 1
                if await self._sleep_or_stop(self.retry_base_s):
                    return False
            while True:
                attempt += 1
                try:
                    await self._apply_once(envelope, payload)
                    return True
                except Exception as exc:  # noqa: BLE001 - every failure is either retried or dead-lettered
                    transient = is_transient(exc)
                    if isinstance(exc, PermanentError) or (
                        not transient and attempt >= self.max_attempts
                    ):
                        return await self._dead_letter(record, exc, attempts=attempt)
                    self.stats.retries += 1
                    delay = min(self.retry_base_s * 2 ** min(attempt - 1, 16), self.retry_max_s)
                    log.warning(
                        "handling %s %s failed (attempt %d, %s), retrying in %.2fs: %s",
                        envelope.event_type,
                        envelope.event_id,
                        attempt,
                        "transient" if transient else "handler",
                        delay,
                        exc,
                    )
                    if await self._sleep_or_stop(delay * (1 + random.random() / 4)):
                        return False
        finally:
            correlation_id.reset(token)
            if span is not None:
                span.end()

    async def _apply_once(self, envelope: Envelope, payload: BaseModel) -> None:
        async with self.engine.begin() as conn:
            if not await self._apply_in(conn, envelope, payload):
                self.stats.duplicates += 1
                return
        self.stats.processed += 1
        if self.after_commit is not None:
            self.after_commit(envelope)

    async def _apply_in(
        self, conn: AsyncConnection, envelope: Envelope, payload: BaseModel
    ) -> bool:
        """Mark the event processed and give it its effect, in the caller's transaction;
        False (and no effect) when it was processed before."""
        first_time = (
            await conn.execute(
                _MARK_PROCESSED, {"consumer": self.group_id, "event_id": envelope.event_id}
            )
        ).first()
        if first_time is None:
            return False
        await self.handler(conn, envelope, payload)
        return True

    async def _dead_letter(self, record: ConsumerRecord, exc: BaseException, attempts: int) -> bool:
        headers = [
            *(record.headers or ()),
            # Redacted: the headers outlive the event's own retention and anyone with topic
            # access reads them. Cut to twice the header's size first, so a huge exception text
            # costs the redaction nothing more (redact() cuts at white space: no half secret is
            # left there unrecognised), then to its size.
            ("dlq.error", _short(redact(f"{type(exc).__name__}: {exc}", 2_000), 1_000).encode()),
            (
                "dlq.trace",
                _short(redact("".join(traceback.format_exception(exc)), 8_000), 4_000).encode(),
            ),
            ("dlq.attempts", str(attempts).encode()),
            ("dlq.consumer", self.group_id.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
        ]
        backoff = self.retry_base_s
        while True:  # the offset must not move on before the dead letter is safely written
            try:
                if self._dlq_producer is None:
                    producer = self._producer_factory()
                    await producer.start()
                    self._dlq_producer = producer
                await self._dlq_producer.send_and_wait(
                    record.topic + DLQ_SUFFIX, value=record.value, key=record.key, headers=headers
                )
                break
            except Exception as send_exc:  # noqa: BLE001
                log.warning("dead-lettering failed, retrying: %s", send_exc)
                producer, self._dlq_producer = self._dlq_producer, None
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                if await self._sleep_or_stop(backoff):
                    return False
                backoff = min(backoff * 2, self.retry_max_s)
        self.stats.dead_lettered += 1
        log.error(
            "dead-lettered %s[%d]@%d after %d attempt(s): %s",
            record.topic,
            record.partition,
            record.offset,
            attempts,
            exc,
        )
        return True

    def _commit_later(self, offsets: dict[TopicPartition, int]) -> None:
        """Have `offsets` committed in the background, after anything pending."""
        for tp, offset in offsets.items():
            if offset > self._to_commit.get(tp, -1):
                self._to_commit[tp] = offset
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(
                self._commit_pending(), name=f"commit:{self.group_id}"
            )

    async def _commit_pending(self) -> None:
        assert self._consumer is not None
        while self._to_commit:
            wait = self._last_commit + self.commit_interval_s - time.monotonic()
            if wait > 0 and not self._commit_now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._commit_now.wait(), timeout=wait)
            offsets, self._to_commit = self._to_commit, {}
            # Only partitions still ours: the client refuses a commit naming any other, which
            # would lose the others' offsets with it.
            held = self._consumer.assignment()
            offsets = {tp: offset for tp, offset in offsets.items() if tp in held}
            if not offsets:
                continue
            try:
                await self._commit_many(offsets)
            except Exception:  # the loop goes on; redeliveries are deduped
                log.exception("offset commit for %s failed", sorted(offsets))
            finally:
                self._last_commit = time.monotonic()

    async def flush_commits(self) -> None:
        """Return once every offset handed to `_commit_later` so far has been committed (or
        its commit failed and was logged), without waiting out the commit interval."""
        self._commit_now.set()
        try:
            while self._committer is not None and not self._committer.done():
                await asyncio.shield(self._committer)
        finally:
            self._commit_now.clear()

    async def _commit_many(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The group moved on; the new owner re-reads from the last commit and the
            # processed_events table turns those redeliveries into no-ops.
            self.stats.commit_failures += 1
            log.warning("offset commit for %s failed: %s", sorted(offsets), exc)

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Sleep; True when the consumer is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        return self._stopping.is_set()


PATIENT_FETCH_MIN_BYTES = 1 << 20
"""What a patient consumer's fetch waits to fill (up to its patience): a second's worth of a
busy topic's records rather than one."""


def _fetch_options(patience_ms: int) -> dict[str, int]:
    if patience_ms <= 0:
        return {"fetch_min_bytes": 1, "fetch_max_wait_ms": 500}
    return {"fetch_min_bytes": PATIENT_FETCH_MIN_BYTES, "fetch_max_wait_ms": patience_ms}


class _FinishInFlight(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IdempotentConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Holding the lock means the batch in flight has been processed; then its offsets
        # (and any others pending) are committed before the partitions go.
        try:
            async with asyncio.timeout(60):
                async with self.owner._inflight:
                    await self.owner.flush_commits()
        except TimeoutError:
            log.warning("batch still in flight at rebalance; it will be redelivered and deduped")
        finally:
            # What could not be committed in time is the new owner's to redo, never a commit
            # of ours later (it could move the group's offset back).
            for tp in revoked:
                self.owner._to_commit.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.owner.stats.assigned = bool(assigned)
        self.owner.stats.joined = True


def _short(value: str, limit: int = 1000) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
