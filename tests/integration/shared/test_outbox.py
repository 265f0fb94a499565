"""The transactional outbox against the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.db import asyncpg_dsn
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import TicketReopened
from ccshared.kafka import ensure_topics, make_producer
from ccshared.outbox import OutboxRelay, outbox_row, partition_for, pending_count
from tests.helpers import wait_until
from tests.integration.shared.conftest import read_all

_INSERT = text(
    "INSERT INTO outbox (topic, key, event_id, event_type, value, headers) "
    "VALUES (:topic, :key, :event_id, :event_type, :value, CAST(:headers AS jsonb))"
)


def event(ticket_id: uuid.UUID, label: str) -> Envelope:
    payload = TicketReopened(ticket_id=ticket_id, actor=label, at=datetime.now(UTC))
    return new_event(payload, producer="test")


async def write(conn: AsyncConnection, topic: str, *events: Envelope) -> None:
    await conn.execute(_INSERT, [outbox_row(e, topic=topic) for e in events])


def relay_for(url: str, bootstrap: str, **kwargs: object) -> OutboxRelay:
    return OutboxRelay(
        asyncpg_dsn(url),
        lambda: make_producer(bootstrap, "test-relay"),
        poll_interval_s=0.2,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_relay_stopped_while_taking_the_leadership_ends_without_a_poll_interval(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str
) -> None:
    """`stop()` wakes the loop, but the loop clears its wake-up as it becomes leader, before
    its first drain: stopped in between, it slept a whole poll interval before it saw the
    stop (2 s by default, at every shutdown that came early: many test teardowns). Here the
    stop lands exactly there, with a poll interval of a minute."""
    told: list[bool] = []

    class StoppedDuringLeadership(OutboxRelay):
        async def drain_once(self, conn: asyncpg.Connection) -> int:
            if not told:
                told.append(True)
                self._stopping.set()  # what stop() does...
                self._wake.set()
                self._wake.clear()  # ...and the loop's leadership step undoes
            return 0

    relay = StoppedDuringLeadership(
        asyncpg_dsn(fresh_database),
        lambda: make_producer(kafka_bootstrap, "test-relay"),
        poll_interval_s=60,
    )
    relay.start()
    assert relay._task is not None
    await asyncio.wait_for(relay._task, 10)
    assert told == [True]
    assert relay.stats.failures == 0  # it ended by the stop, not by an error


async def test_committed_events_reach_kafka_in_key_order(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    keys = [uuid.uuid4() for _ in range(3)]
    written: dict[str, list[uuid.UUID]] = {str(k): [] for k in keys}
    for batch in range(10):
        events = [event(k, f"{batch}") for k in keys]
        async with engine.begin() as conn:
            await write(conn, topic, *events)
        for e in events:
            written[e.key].append(e.event_id)

    relay = relay_for(fresh_database, kafka_bootstrap)
    relay.start()
    try:
        records = await read_all(kafka_bootstrap, topic, expected=30)
    finally:
        await relay.stop()

    seen: dict[str, list[uuid.UUID]] = {str(k): [] for k in keys}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        seen[record.key.decode()].append(Envelope.model_validate_json(record.value).event_id)
    assert seen == written
    async with engine.connect() as conn:
        assert await pending_count(conn) == 0


async def test_a_topic_prefix_goes_before_every_topic_on_kafka_not_in_the_outbox(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """Deployments (or benchmarks) sharing a cluster: the outbox and the catalog keep the
    plain names, the relay publishes under the prefix, and topic provisioning creates them."""
    prefix, plain = topic.split(".", 1)
    prefix += "."
    created = await ensure_topics(kafka_bootstrap, [plain], prefix=prefix)
    assert created == []  # `topic` is exactly the prefixed name: nothing else to create
    e = event(uuid.uuid4(), "prefixed")
    async with engine.begin() as conn:
        await write(conn, plain, e)
    relay = relay_for(fresh_database, kafka_bootstrap, topic_prefix=prefix)
    relay.start()
    try:
        records = await read_all(kafka_bootstrap, topic, expected=1)
    finally:
        await relay.stop()
    assert [Envelope.model_validate_json(r.value).event_id for r in records] == [e.event_id]


async def test_rolled_back_event_never_reaches_kafka(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    ticket = uuid.uuid4()
    doomed, kept = event(ticket, "doomed"), event(ticket, "kept")
    async with engine.connect() as conn:
        await conn.begin()
        await write(conn, topic, doomed)
        await conn.rollback()
    async with engine.begin() as conn:
        await write(conn, topic, kept)

    relay = relay_for(fresh_database, kafka_bootstrap)
    relay.start()
    try:
        await wait_until(lambda: _published(relay, 1))
        records = await read_all(kafka_bootstrap, topic, expected=2, timeout_s=3)
    finally:
        await relay.stop()
    assert [Envelope.model_validate_json(r.value).event_id for r in records] == [kept.event_id]


async def _published(relay: OutboxRelay, n: int) -> bool:
    return relay.stats.published >= n


async def test_transaction_that_began_earlier_but_committed_later_is_not_skipped(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    ticket = uuid.uuid4()
    early, late = event(ticket, "early-begun"), event(ticket, "late-begun")
    relay = relay_for(fresh_database, kafka_bootstrap)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    slow = await engine.connect()
    try:
        # The slow transaction takes the lower outbox id first, then stays open...
        await slow.begin()
        await write(slow, topic, early)
        # ...while a faster one writes a higher id and commits.
        async with engine.begin() as fast:
            await write(fast, topic, late)

        # A relay reading "id > last seen" would publish `late` now and never see `early`.
        # This one holds `late` back until the slow transaction has settled.
        assert await relay.drain_once(relay_conn) == 0
        async with engine.connect() as conn:
            assert await pending_count(conn) == 1  # only `late` is visible; nothing deleted

        await slow.commit()
        assert await relay.drain_once(relay_conn) == 2
    finally:
        await slow.close()
        await relay_conn.close()
        await relay.stop()

    records = await read_all(kafka_bootstrap, topic, expected=2)
    assert [Envelope.model_validate_json(r.value).event_id for r in records] == [
        early.event_id,
        late.event_id,
    ]


async def test_row_of_an_unsettled_committed_transaction_holds_back_later_ids(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """A transaction that got its xid early but wrote its event late must not overtake one that
    wrote earlier for the same key but is still above the settled horizon (held there by an
    open transaction that has written to the outbox)."""
    ticket = uuid.uuid4()
    blocked, first, second = (event(ticket, label) for label in ("blocked", "first", "second"))
    relay = relay_for(fresh_database, kafka_bootstrap)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (n int)"))
    early_xid, blocker = await engine.connect(), await engine.connect()
    try:
        await early_xid.begin()
        await early_xid.execute(text("INSERT INTO scratch VALUES (1)"))  # takes an xid now
        await blocker.begin()
        await write(blocker, topic, blocked)  # a later xid, an outbox row, stays open
        async with engine.begin() as conn:  # xid above the blocker's: commits `first`
            await write(conn, topic, first)
        await write(early_xid, topic, second)  # lowest xid, highest outbox id
        await early_xid.commit()

        # `second` is settled (its xid is below the blocker's) but `first` is not: hold both.
        assert await relay.drain_once(relay_conn) == 0
        await blocker.commit()
        assert await relay.drain_once(relay_conn) == 3
    finally:
        await early_xid.close()
        await blocker.close()
        await relay_conn.close()
        await relay.stop()
    records = await read_all(kafka_bootstrap, topic, expected=3)
    labels = [Envelope.model_validate_json(r.value).payload["actor"] for r in records]
    assert labels == ["blocked", "first", "second"]


async def open_transaction_with_xid(dsn: str) -> asyncpg.Connection:
    """A session whose transaction holds an xid (as a write would give it) and stays open."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("BEGIN")
    await conn.fetchval("SELECT pg_current_xact_id()")
    return conn


async def test_an_open_transaction_in_another_database_does_not_delay_publishing(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """It holds the cluster-wide xmin below our row's xid, but cannot write our outbox."""
    other_db = asyncpg_dsn(fresh_database).rsplit("/", 1)[0] + "/postgres"
    elsewhere = await open_transaction_with_xid(other_db)
    relay = relay_for(fresh_database, kafka_bootstrap)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    e = event(uuid.uuid4(), "not delayed")
    try:
        async with engine.begin() as conn:
            await write(conn, topic, e)
        assert await relay.drain_once(relay_conn) == 1
    finally:
        await elsewhere.close()
        await relay_conn.close()
        await relay.stop()
    records = await read_all(kafka_bootstrap, topic, expected=1)
    assert [Envelope.model_validate_json(r.value).event_id for r in records] == [e.event_id]


async def test_an_open_transaction_of_this_database_holds_back_later_rows_before_it_writes_here(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """Only another database's transactions are known not to write this outbox: one of this
    database holds back the rows committed after it took its xid, as the cluster xmin did,
    and rows committed before go out."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (n int)"))
        await write(conn, topic, event(uuid.uuid4(), "before"))
    idle = await asyncpg.connect(asyncpg_dsn(fresh_database))
    await idle.execute("BEGIN")
    await idle.execute("INSERT INTO scratch VALUES (1)")  # an xid, nothing in the outbox
    relay = relay_for(fresh_database, kafka_bootstrap)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        async with engine.begin() as conn:
            await write(conn, topic, event(uuid.uuid4(), "after"))
        assert await relay.drain_once(relay_conn) == 1  # `before`
        assert await relay.drain_once(relay_conn) == 0
        await idle.execute("ROLLBACK")
        assert await relay.drain_once(relay_conn) == 1  # `after`
    finally:
        await idle.close()
        await relay_conn.close()
        await relay.stop()


async def test_a_long_transaction_that_wrote_here_holds_back_only_rows_after_its_own(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """Rows committed before the long transaction took its xid go out; rows committed after it
    wait until it ends, then everything goes in id order."""
    ticket = uuid.uuid4()
    before, during, after = (event(ticket, label) for label in ("before", "during", "after"))
    relay = relay_for(fresh_database, kafka_bootstrap)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    async with engine.begin() as conn:
        await write(conn, topic, before)
    long = await engine.connect()
    try:
        await long.begin()
        await write(long, topic, during)
        async with engine.begin() as conn:
            await write(conn, topic, after)
        assert await relay.drain_once(relay_conn) == 1  # `before` only
        assert await relay.drain_once(relay_conn) == 0
        await long.commit()
        assert await relay.drain_once(relay_conn) == 2
    finally:
        await long.close()
        await relay_conn.close()
        await relay.stop()
    records = await read_all(kafka_bootstrap, topic, expected=3)
    labels = [Envelope.model_validate_json(r.value).payload["actor"] for r in records]
    assert labels == ["before", "during", "after"]


class _StallingProducer:
    """Sends the first `allow` record batches, then hangs: the process is 'killed' while it
    hangs. `sent` counts the records in the batches that went out."""

    def __init__(self, real: AIOKafkaProducer, allow: int) -> None:
        self.real = real
        self.allow = allow
        self.batches = 0
        self.sent = 0
        self.closed: list[bool] = []

    async def start(self) -> None:
        await self.real.start()

    async def stop(self) -> None:
        await self.real.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        return await self.real.partitions_for(topic)  # type: ignore[no-any-return]

    def create_batch(self) -> object:
        return self.real.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> object:
        if self.batches >= self.allow:
            await asyncio.Event().wait()
        self.batches += 1
        self.sent += batch.record_count()
        self.closed.append(batch.closed())
        return await self.real.send_batch(batch, topic, partition=partition)


async def test_relay_killed_mid_batch_and_restarted_loses_nothing(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    tickets = [uuid.uuid4() for _ in range(4)]
    while len({partition_for(str(t).encode(), 3) for t in tickets}) < 2:
        tickets = [uuid.uuid4() for _ in range(4)]  # one batch per partition: at least two
    events = [event(tickets[i % 4], str(i)) for i in range(200)]
    async with engine.begin() as conn:
        await write(conn, topic, *events)

    stalling = _StallingProducer(make_producer(kafka_bootstrap, "doomed-relay"), allow=1)
    doomed = OutboxRelay(asyncpg_dsn(fresh_database), lambda: stalling, poll_interval_s=0.2)
    doomed.start()
    await wait_until(lambda: _sent(stalling, 1))
    assert doomed._task is not None
    doomed._task.cancel()  # killed mid-batch: its rows were sent but never deleted
    await asyncio.gather(doomed._task, return_exceptions=True)
    await stalling.real.flush()
    await stalling.stop()
    async with engine.connect() as conn:
        assert await pending_count(conn) == 200
    resent = stalling.sent
    assert 0 < resent < 200

    relay = relay_for(fresh_database, kafka_bootstrap)
    relay.start()
    try:
        records = await read_all(kafka_bootstrap, topic, expected=200 + resent)
    finally:
        await relay.stop()
    ids = [Envelope.model_validate_json(r.value).event_id for r in records]
    assert set(ids) == {e.event_id for e in events}
    assert len(ids) == 200 + resent  # those sent twice: at least once, never zero times
    async with engine.connect() as conn:
        assert await pending_count(conn) == 0


async def _sent(producer: _StallingProducer, n: int) -> bool:
    return producer.batches >= n


async def test_only_one_relay_per_database_publishes(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    first = relay_for(fresh_database, kafka_bootstrap)
    second = relay_for(fresh_database, kafka_bootstrap)
    first.start()
    await wait_until(lambda: _leader(first))
    second.start()
    try:
        async with engine.begin() as conn:
            await write(conn, topic, *[event(uuid.uuid4(), str(i)) for i in range(20)])
        await wait_until(lambda: _published(first, 20))
        assert second.stats.is_leader is False
        assert second.stats.published == 0
        await first.stop()  # the standby takes over
        async with engine.begin() as conn:
            await write(conn, topic, event(uuid.uuid4(), "after failover"))
        await wait_until(lambda: _published(second, 1), timeout=10)
    finally:
        await first.stop()
        await second.stop()


async def _leader(relay: OutboxRelay) -> bool:
    return relay.stats.is_leader


async def test_empty_outbox_publishes_nothing(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str
) -> None:
    relay = relay_for(fresh_database, kafka_bootstrap)
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        assert await relay.drain_once(conn) == 0
    finally:
        await conn.close()
        await relay.stop()


class _BrokenSequenceProducer(_StallingProducer):
    """An idempotent producer after OutOfOrderSequenceNumber: every send fails from then on."""

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> object:
        from aiokafka.errors import OutOfOrderSequenceNumber

        self.batches += 1
        raise OutOfOrderSequenceNumber("out of order sequence number")


async def test_relay_recreates_a_producer_broken_by_out_of_order_sequence(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    made: list[object] = []

    def factory() -> object:
        real = make_producer(kafka_bootstrap, "relay")
        producer = _BrokenSequenceProducer(real, 0) if not made else real
        made.append(producer)
        return producer

    relay = OutboxRelay(asyncpg_dsn(fresh_database), factory, poll_interval_s=0.2)  # type: ignore[arg-type]
    e = event(uuid.uuid4(), "survives a broken producer")
    async with engine.begin() as conn:
        await write(conn, topic, e)
    relay.start()
    try:
        await wait_until(lambda: _published(relay, 1))
    finally:
        await relay.stop()
    assert len(made) == 2  # the broken one was thrown away, not reused
    assert relay.stats.failures == 1
    records = await read_all(kafka_bootstrap, topic, expected=1)
    assert Envelope.model_validate_json(records[0].value).event_id == e.event_id


async def test_relay_vacuums_the_outbox_after_every_so_many_deleted_rows(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """Published rows are deleted; left to autovacuum (a visit a minute) a busy outbox carries
    hundreds of thousands of dead rows that every poll walks. The relay vacuums it itself."""
    relay = relay_for(fresh_database, kafka_bootstrap, batch_size=4, vacuum_every=6)
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        for label in range(3):
            async with engine.begin() as conn:
                await write(conn, topic, *(event(uuid.uuid4(), str(label)) for _ in range(4)))
        assert await relay.drain_once(relay_conn) == 4
        assert relay.stats.vacuums == 0  # 4 deleted, fewer than 6
        assert await relay.drain_once(relay_conn) == 4
        assert relay.stats.vacuums == 1
        assert await relay.drain_once(relay_conn) == 4
        assert relay.stats.vacuums == 1  # the count starts again after each vacuum

        async def vacuumed() -> bool:
            count = await relay_conn.fetchval(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"
            )
            return bool(count)

        await wait_until(vacuumed, timeout=10)
    finally:
        await relay_conn.close()
        await relay.stop()


async def test_relay_hands_the_producer_closed_batches(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic: str
) -> None:
    """An open record batch waits `linger_ms` in the producer for more records; the relay's
    batches are complete, so it closes them and they go out at once."""
    producer = _StallingProducer(make_producer(kafka_bootstrap, "closing-relay"), allow=1000)
    relay = OutboxRelay(asyncpg_dsn(fresh_database), lambda: producer)  # type: ignore[arg-type,return-value]
    relay_conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        async with engine.begin() as conn:
            await write(conn, topic, *(event(uuid.uuid4(), str(n)) for n in range(12)))
        assert await relay.drain_once(relay_conn) == 12
    finally:
        await relay_conn.close()
        await relay.stop()
    assert producer.sent == 12
    assert producer.closed
    assert all(producer.closed)
