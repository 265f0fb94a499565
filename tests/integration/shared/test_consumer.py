"""The idempotent consumer against the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.consumer import Handler, IdempotentConsumer, PermanentError
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import TicketReopened
from ccshared.kafka import make_producer
from tests.helpers import wait_until
from tests.integration.shared.conftest import read_all


@pytest.fixture
async def effects(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE effects (label text NOT NULL, at timestamptz)"))
    return engine


async def record_effect(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
    assert isinstance(payload, TicketReopened)
    await conn.execute(
        text("INSERT INTO effects (label, at) VALUES (:l, now())"), {"l": payload.actor}
    )


async def labels(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT label FROM effects ORDER BY at, label"))
        return [r.label for r in rows]


def event(label: str, ticket: uuid.UUID | None = None) -> Envelope:
    payload = TicketReopened(ticket_id=ticket or uuid.uuid4(), actor=label, at=datetime.now(UTC))
    return new_event(payload, producer="test")


@pytest.fixture
def make_consumer(
    effects: AsyncEngine, kafka_bootstrap: str, topic: str
) -> Callable[..., IdempotentConsumer]:
    group = f"test-group-{uuid.uuid4().hex[:8]}"

    def build(handler: Handler = record_effect, **kwargs: object) -> IdempotentConsumer:
        return IdempotentConsumer(
            engine=effects,
            bootstrap=kafka_bootstrap,
            group_id=group,
            topics=[topic],
            handler=handler,
            producer_factory=lambda: make_producer(kafka_bootstrap, "dlq"),
            **{"retry_base_s": 0.01, "max_attempts": 3, **kwargs},  # type: ignore[arg-type]
        )

    return build


@pytest.fixture
async def running(
    make_consumer: Callable[..., IdempotentConsumer],
) -> AsyncIterator[Callable[..., asyncio.Future[IdempotentConsumer]]]:
    started: list[IdempotentConsumer] = []

    async def start(**kwargs: object) -> IdempotentConsumer:
        consumer = make_consumer(**kwargs)
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start  # type: ignore[misc]
    for consumer in started:
        await consumer.stop(grace_s=2)


async def send(producer: AIOKafkaProducer, topic: str, value: bytes, key: str) -> int:
    metadata = await producer.send_and_wait(topic, value=value, key=key.encode())
    return int(metadata.offset)


async def test_redelivered_event_has_one_effect(
    running, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    once = event("once")
    for _ in range(3):  # what an at-least-once relay or a rebalance can do
        await send(producer, topic, once.to_bytes(), once.key)
    consumer = await running()
    await wait_until(lambda: _handled(consumer, 3))
    assert await labels(effects) == ["once"]
    assert consumer.stats.processed == 1
    assert consumer.stats.duplicates == 2


async def _handled(consumer: IdempotentConsumer, n: int) -> bool:
    return consumer.stats.processed + consumer.stats.duplicates + consumer.stats.dead_lettered >= n


async def test_poison_event_is_dead_lettered_after_its_retries_and_does_not_block(
    running, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine, kafka_bootstrap: str
) -> None:
    attempts: list[str] = []

    async def picky(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, TicketReopened)
        if payload.actor == "poison":
            attempts.append(payload.actor)
            raise ValueError("cannot handle a poisoned ticket")
        await record_effect(conn, envelope, payload)

    ticket = uuid.uuid4()  # one key, so one partition: the poison sits between the good ones
    for label in ("before", "poison", "after"):
        e = event(label, ticket)
        await send(producer, topic, e.to_bytes(), e.key)
    await send(producer, topic, b"\x00not an event", str(ticket))
    await send(producer, topic, event("last", ticket).to_bytes(), str(ticket))

    consumer = await running(handler=picky)
    await wait_until(lambda: _handled(consumer, 5))
    assert await labels(effects) == ["before", "after", "last"]
    assert attempts == ["poison"] * 3

    dead = await read_all(kafka_bootstrap, topic + ".dlq", expected=2)
    assert len(dead) == 2
    headers = [dict(r.headers) for r in dead]
    assert headers[0][b"dlq.attempts".decode()] == b"3"
    assert b"ValueError: cannot handle a poisoned ticket" in headers[0]["dlq.error"]
    assert headers[0]["dlq.topic"] == topic.encode()
    assert headers[1]["dlq.attempts"] == b"1"  # undecodable: retrying cannot help
    assert b"EventDecodeError" in headers[1]["dlq.error"]
    assert dead[1].value == b"\x00not an event"


async def test_permanent_error_skips_the_retries(
    running, producer: AIOKafkaProducer, topic: str, kafka_bootstrap: str
) -> None:
    calls = 0

    async def refuse(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("ticket belongs to a deleted tenant")

    e = event("x")
    await send(producer, topic, e.to_bytes(), e.key)
    consumer = await running(handler=refuse)
    await wait_until(lambda: _handled(consumer, 1))
    assert calls == 1
    dead = await read_all(kafka_bootstrap, topic + ".dlq", expected=1)
    assert dict(dead[0].headers)["dlq.attempts"] == b"1"


async def test_database_outage_is_retried_not_dead_lettered(
    running, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    failures = 0

    async def flaky_database(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        nonlocal failures
        if failures < 6:  # more failures than max_attempts: only transient ones may go on
            failures += 1
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionResetError("db went away"))
        await record_effect(conn, envelope, payload)

    e = event("survived")
    await send(producer, topic, e.to_bytes(), e.key)
    consumer = await running(handler=flaky_database)
    await wait_until(lambda: _handled(consumer, 1))
    assert await labels(effects) == ["survived"]
    assert consumer.stats.dead_lettered == 0
    assert consumer.stats.retries == 6


async def test_failed_effect_is_rolled_back_with_its_dedupe_mark(
    running, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    """A handler that wrote, then failed, must not leave its write or its processed mark."""
    tries = 0

    async def fail_once_after_writing(
        conn: AsyncConnection, envelope: Envelope, payload: BaseModel
    ) -> None:
        nonlocal tries
        tries += 1
        await record_effect(conn, envelope, payload)
        if tries == 1:
            raise RuntimeError("crashed after the write")

    e = event("exactly-once")
    await send(producer, topic, e.to_bytes(), e.key)
    consumer = await running(handler=fail_once_after_writing)
    await wait_until(lambda: _handled(consumer, 1))
    assert await labels(effects) == ["exactly-once"]
    assert tries == 2


async def test_stop_never_commits_an_unprocessed_offset(
    make_consumer,
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    ticket = uuid.uuid4()
    stuck = asyncio.Event()

    async def hangs_on_second(
        conn: AsyncConnection, envelope: Envelope, payload: BaseModel
    ) -> None:
        assert isinstance(payload, TicketReopened)
        if payload.actor == "2":
            stuck.set()
            await asyncio.Event().wait()  # a handler still busy when the service is stopped
        await record_effect(conn, envelope, payload)

    offsets = [
        await send(producer, topic, event(str(i), ticket).to_bytes(), str(ticket))
        for i in (1, 2, 3)
    ]
    first = make_consumer(handler=hangs_on_second)
    await first.start()
    await asyncio.wait_for(stuck.wait(), 20)
    await first.stop(grace_s=0.5)

    metadata = await producer.send_and_wait(topic, value=b"probe", key=str(ticket).encode())
    tp = TopicPartition(topic, metadata.partition)
    committed = await _committed(kafka_bootstrap, first.group_id, tp)
    # Never past what was processed: either the first event's effect committed with its offset,
    # or (its batch was still open when the consumer stopped) neither did.
    done = await labels(effects)
    assert (committed, done) in ((offsets[1], ["1"]), (None, []))

    second = make_consumer()
    await second.start()
    try:
        await wait_until(lambda: _labels_are(effects, ["1", "2", "3"]))
    finally:
        await second.stop()


async def _labels_are(engine: AsyncEngine, expected: list[str]) -> bool:
    return sorted(await labels(engine)) == expected


async def test_rebalance_between_two_members_keeps_one_effect_per_event(
    make_consumer, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    async def slow_effect(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        await asyncio.sleep(0.005)  # keep work in flight while the group rebalances
        await record_effect(conn, envelope, payload)

    sent = [event(str(i)) for i in range(300)]
    first = make_consumer(handler=slow_effect)
    await first.start()
    second = make_consumer(handler=slow_effect)
    try:
        for e in sent[:150]:
            await producer.send(topic, value=e.to_bytes(), key=e.key.encode())
        await wait_until(lambda: _count_at_least(effects, 20))
        await second.start()  # the group rebalances while the first member is busy
        for e in sent[150:]:
            await producer.send(topic, value=e.to_bytes(), key=e.key.encode())
        await producer.flush()
        await wait_until(lambda: _count_at_least(effects, 300), timeout=60)
    finally:
        await first.stop()
        await second.stop()
    got = await labels(effects)
    assert sorted(got) == sorted(e.payload["actor"] for e in sent)  # each once, none lost
    assert second.stats.processed > 0  # the rebalance really handed partitions over


async def _count_at_least(engine: AsyncEngine, n: int) -> bool:
    return len(await labels(engine)) >= n


# -- the batch handler: a fetched batch at once, or event by event when that fails ---------


async def record_effects(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
    for envelope, payload in events:
        await record_effect(conn, envelope, payload)


async def test_batch_handler_gets_each_first_time_event_once_in_order(
    running, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    seen: list[list[str]] = []

    async def in_bulk(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        seen.append([p.actor for _, p in events])  # type: ignore[attr-defined]
        await record_effects(conn, events)

    ticket = uuid.uuid4()  # one partition, so one fetch holds them all, in order
    first, again = event("b1", ticket), event("b2", ticket)
    for e in (first, again, first, event("b3", ticket), again):  # redeliveries in the batch
        await send(producer, topic, e.to_bytes(), e.key)
    consumer = await running(batch_handler=in_bulk)
    await wait_until(lambda: _handled(consumer, 5))
    assert await labels(effects) == ["b1", "b2", "b3"]
    assert [label for batch in seen for label in batch] == ["b1", "b2", "b3"]
    assert consumer.stats.processed == 3
    assert consumer.stats.duplicates == 2

    # Delivered again later (a rebalance, a replay): already processed, the handler sees none.
    for e in (first, again):
        await send(producer, topic, e.to_bytes(), e.key)
    await wait_until(lambda: _handled(consumer, 7))
    assert await labels(effects) == ["b1", "b2", "b3"]
    assert [label for batch in seen for label in batch] == ["b1", "b2", "b3"]


async def _committed(kafka_bootstrap: str, group_id: str, tp: TopicPartition) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group_id)
    await probe.start()
    try:
        return await probe.committed(tp)
    finally:
        await probe.stop()


async def test_offsets_are_committed_in_the_background_and_what_is_pending_on_stop(
    make_consumer,
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    ticket = uuid.uuid4()  # one partition

    async def produce(labels_: list[str]) -> tuple[TopicPartition, int]:
        for label in labels_:
            e = event(label, ticket)
            metadata = await producer.send_and_wait(topic, value=e.to_bytes(), key=e.key.encode())
        return TopicPartition(topic, metadata.partition), metadata.offset

    tp, last = await produce(["c1", "c2", "c3"])
    consumer = make_consumer(batch_handler=record_effects)
    await consumer.start()
    try:
        await wait_until(lambda: _handled(consumer, 3))
        # Committed while the consumer goes on: the next fetch does not wait for it.
        await wait_until(
            lambda: _equals(_committed(kafka_bootstrap, consumer.group_id, tp), last + 1)
        )
        tp, last = await produce(["c4", "c5"])
        await wait_until(lambda: _handled(consumer, 5))
    finally:
        await consumer.stop()
    # Stopping right after the batch commits its offsets before leaving the group.
    assert await _committed(kafka_bootstrap, consumer.group_id, tp) == last + 1
    assert await labels(effects) == ["c1", "c2", "c3", "c4", "c5"]


@pytest.mark.parametrize("batch", [True, False], ids=["batch handler", "event by event"])
async def test_offsets_are_committed_at_most_once_per_interval_and_at_once_on_stop(
    make_consumer,
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    kafka_bootstrap: str,
    batch: bool,
) -> None:
    """Records arriving one fetch at a time are committed once per interval, not once per
    fetch (a round trip and an offsets-log write each); a stop commits what is pending."""
    ticket = uuid.uuid4()  # one partition
    options = {"batch_handler": record_effects} if batch else {}
    consumer = make_consumer(commit_interval_s=1.5, **options)
    commits: list[dict[TopicPartition, int]] = []
    real_commit = consumer._commit_many

    async def counted(offsets: dict[TopicPartition, int]) -> None:
        commits.append(dict(offsets))
        await real_commit(offsets)

    consumer._commit_many = counted  # type: ignore[method-assign]
    await consumer.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for i in range(12):  # one at a time: each its own fetch
            e = event(f"i{i}", ticket)
            metadata = await producer.send_and_wait(topic, value=e.to_bytes(), key=e.key.encode())
            await wait_until(lambda n=i + 1: _handled(consumer, n))  # type: ignore[misc]
        tp, last = TopicPartition(topic, metadata.partition), metadata.offset
        fetched, elapsed = len(commits), loop.time() - started
    finally:
        await consumer.stop()
    # Twelve separate fetches (each waited for its record's effect), one commit per interval
    # at most: the first at once, then one per 1.5 s.
    assert fetched <= 1 + elapsed // 1.5, (elapsed, commits)
    assert fetched < 12, (elapsed, commits)
    assert await labels(effects) == [f"i{i}" for i in range(12)]
    # The stop committed the rest at once, up to the last record.
    assert await _committed(kafka_bootstrap, consumer.group_id, tp) == last + 1


async def test_a_patient_consumer_takes_records_arriving_apart_in_one_fetch(
    make_consumer, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    """A consumer nobody waits on lets the broker hold its fetch (up to its patience) instead
    of taking each record as it arrives: records 50 ms apart come in one or two batches, where
    an impatient consumer takes about one a fetch."""
    ticket = uuid.uuid4()  # one partition
    sizes: list[int] = []

    async def recorded(conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]) -> None:
        sizes.append(len(events))
        await record_effects(conn, events)

    consumer = make_consumer(batch_handler=recorded, patience_ms=3_000)
    await consumer.start()
    try:
        await wait_until(lambda: _joined(consumer), timeout=30)
        for i in range(5):
            e = event(f"p{i}", ticket)
            await producer.send_and_wait(topic, value=e.to_bytes(), key=e.key.encode())
            await asyncio.sleep(0.05)
        await wait_until(lambda: _handled(consumer, 5), timeout=30)
    finally:
        await consumer.stop()
    assert await labels(effects) == [f"p{i}" for i in range(5)]
    # A fetch ends only when it is full (1 MB) or its 3 s are up: the 200 ms of sending
    # straddle at most one such end.
    assert len(sizes) <= 2, sizes


async def _joined(consumer: IdempotentConsumer) -> bool:
    return bool(consumer.assignment())


async def test_stop_is_bounded_when_a_commit_never_finishes(
    make_consumer, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    """With the broker unreachable, aiokafka retries a commit until its client is closed,
    which only stop() does: stop() must not wait for the pending commit for ever."""
    ticket = uuid.uuid4()
    e = event("s1", ticket)
    await send(producer, topic, e.to_bytes(), e.key)
    consumer = make_consumer(batch_handler=record_effects)
    hung = asyncio.Event()

    async def never_returns(offsets: dict[TopicPartition, int]) -> None:
        hung.set()
        await asyncio.Event().wait()

    consumer._commit_many = never_returns  # type: ignore[method-assign]
    await consumer.start()
    await asyncio.wait_for(hung.wait(), 20)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(consumer.stop(grace_s=0.5), 10)
    assert asyncio.get_running_loop().time() - started < 5
    assert await labels(effects) == ["s1"]


async def test_stop_while_idle_in_a_fetch_does_not_wait_out_the_grace(
    make_consumer, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine
) -> None:
    """A consumer with nothing to do waits in a fetch (a long poll): stopping it has nothing
    to finish, so it ends at once instead of after the fetch or the grace period (every
    service's shutdown, a rolling update's pod, every test's teardown). Its fetch here never
    returns: before, stop() waited out the whole 30 s grace."""
    e = event("before", uuid.uuid4())
    await send(producer, topic, e.to_bytes(), e.key)
    consumer = make_consumer(batch_handler=record_effects)
    await consumer.start()
    await wait_until(lambda: _equals(labels(effects), ["before"]), timeout=30)
    fetching = asyncio.Event()
    assert consumer._consumer is not None

    async def never_returns(*_args: object, **_kwargs: object) -> dict[TopicPartition, list]:
        fetching.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    consumer._consumer.getmany = never_returns  # type: ignore[method-assign]
    await asyncio.wait_for(fetching.wait(), 10)
    await asyncio.wait_for(consumer.stop(grace_s=30), 10)
    assert consumer._task is not None
    assert consumer._task.done()
    # What it had processed was committed before it left: a new member starts after it.
    again = make_consumer(batch_handler=record_effects)
    await again.start()
    later = event("after", uuid.uuid4())
    await send(producer, topic, later.to_bytes(), later.key)
    await wait_until(lambda: _equals(labels(effects), ["before", "after"]), timeout=30)
    await again.stop(grace_s=2)


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_failing_batch_is_rolled_back_and_taken_event_by_event(
    running, producer: AIOKafkaProducer, topic: str, effects: AsyncEngine, kafka_bootstrap: str
) -> None:
    """The batch handler wrote some effects, then failed: nothing of it stays (no effect, no
    dedupe mark), the good events get their effect once through the single-event handler,
    and the poisoned one is dead-lettered as usual."""
    bulk_calls = 0

    async def writes_then_fails(
        conn: AsyncConnection, events: list[tuple[Envelope, BaseModel]]
    ) -> None:
        nonlocal bulk_calls
        bulk_calls += 1
        await record_effects(conn, [e for e in events if e[1].actor != "poison"])  # type: ignore[attr-defined]
        if any(p.actor == "poison" for _, p in events):  # type: ignore[attr-defined]
            raise ValueError("a poisoned ticket in the batch")

    async def one_at_a_time(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, TicketReopened)
        if payload.actor == "poison":
            raise ValueError("cannot handle a poisoned ticket")
        await record_effect(conn, envelope, payload)

    ticket = uuid.uuid4()
    for label in ("one", "poison", "two"):
        e = event(label, ticket)
        await send(producer, topic, e.to_bytes(), e.key)
    consumer = await running(handler=one_at_a_time, batch_handler=writes_then_fails)
    await wait_until(lambda: _handled(consumer, 3))
    assert bulk_calls >= 1
    assert await labels(effects) == ["one", "two"]
    assert consumer.stats.processed == 2
    assert consumer.stats.dead_lettered == 1
    dead = await read_all(kafka_bootstrap, topic + ".dlq", expected=1)
    assert b"poisoned" in dict(dead[0].headers)["dlq.error"]


async def test_dead_letter_headers_carry_no_secret_nor_sql_parameter(
    running, producer: AIOKafkaProducer, topic: str, kafka_bootstrap: str
) -> None:
    api_key = "cck_0123456789ab_" + "S" * 43
    webhook_secret = "whsec_" + "W" * 43
    customer_text = "my card is 4111 1111 1111 1111"

    async def leaky(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, TicketReopened)
        if payload.actor == "sql":  # the database quotes a parameter it cannot take
            await conn.execute(text("SELECT CAST(:v AS int)"), {"v": customer_text})
        raise PermanentError(f"integration key {api_key} refused; webhook {webhook_secret}")

    for label in ("key", "sql"):
        e = event(label)
        await send(producer, topic, e.to_bytes(), e.key)
    consumer = await running(handler=leaky, max_attempts=1)
    await wait_until(lambda: _handled(consumer, 2))
    dead = await read_all(kafka_bootstrap, topic + ".dlq", expected=2)
    assert len(dead) == 2
    for record in dead:
        headers = dict(record.headers)
        for name in ("dlq.error", "dlq.trace"):
            for secret in (api_key, "S" * 43, webhook_secret, customer_text, "4111"):
                assert secret.encode() not in headers[name], (name, secret)
    errors = sorted(dict(r.headers)["dlq.error"] for r in dead)
    assert b"cck_0123456789ab_***" in errors[0] + errors[1]  # the key's prefix stays: it names it
    assert any(b"query argument $1: ***" in dict(r.headers)["dlq.trace"] for r in dead)
