"""Dead letters: count, inspect and replay what consumers gave up on, and warn while any wait.

A consumer that cannot apply an event sends it to the topic's twin `<topic>.dlq` with headers
saying why (`dlq.error`, `dlq.attempts`, `dlq.consumer`, ...; see ccshared.consumer). Those
topics keep their records for ever (ccshared.kafka.ensure_topics), so nothing is lost while it
waits for an operator:

    python -m ccshared.dlq [--service S] list
    python -m ccshared.dlq show TOPIC [P:O ...] [--all] [--value]
    python -m ccshared.dlq replay TOPIC (P:O ... | --all)
    python -m ccshared.dlq discard TOPIC (P:O ... | --all)

(`make dlq SERVICE=router ARGS="list"`). Its Kafka login: DLQ_KAFKA_BOOTSTRAP (or --bootstrap),
DLQ_KAFKA_SECURITY_PROTOCOL, DLQ_KAFKA_SASL_USERNAME, ... (ccshared.settings.KafkaClientSettings;
plain text by default). TOPIC is the catalog's name (`router.tickets` or
`router.tickets.dlq`); the topic prefix goes before it. P:O is a partition and an offset.

Replay publishes a dead letter again on the original topic with its key and original headers
(the `dlq.*` ones dropped, `dlq.replayed_from` added); consumers dedupe by event id, so a
consumer that had applied it skips it and the one that failed tries again. Replayed or
discarded records stay in the dead-letter topic: a consumer group of its own (`HANDLED_GROUP`)
marks, per partition, how far they have been dealt with, and only what lies past that mark
counts as waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ccshared.events.catalog import CATALOG, DLQ_SUFFIX
from ccshared.kafka import PLAINTEXT, KafkaSecurity, make_producer, topic_partitions
from ccshared.settings import LOCAL_KAFKA, KafkaClientSettings
from ccshared.tasks import finish_or_cancel

log = logging.getLogger(__name__)

HANDLED_GROUP = "contactcenter.dlq-handled"
ENV_PREFIX = "DLQ_"  # the command's Kafka login: DLQ_KAFKA_SECURITY_PROTOCOL, ...
REPLAYED_FROM = "dlq.replayed_from"
_READ_TIMEOUT_S = 15.0  # reading one partition's range; records to the end are already there


def dead_letter_topic(name: str, prefix: str = "") -> str:
    """`router.tickets` or `router.tickets.dlq` -> `<prefix>router.tickets.dlq`."""
    plain = name.removeprefix(prefix) if prefix and name.startswith(prefix) else name
    return prefix + (plain if plain.endswith(DLQ_SUFFIX) else plain + DLQ_SUFFIX)


def original_topic(dlq_topic: str) -> str:
    if not dlq_topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{dlq_topic!r} is not a dead-letter topic (no {DLQ_SUFFIX} suffix)")
    return dlq_topic.removesuffix(DLQ_SUFFIX)


def service_dead_letter_topics(service: str | None, prefix: str = "") -> list[str]:
    """The twins of the topics `service` consumes (every catalog topic's when None)."""
    topics = CATALOG.consumed_by(service) if service else list(CATALOG.topics.values())
    return [prefix + t.dead_letter for t in topics]


@dataclass(frozen=True)
class Backlog:
    """A dead-letter topic's records: all of them, and those past the handled mark."""

    topic: str
    total: int
    waiting: int
    # Per partition: the first record not yet dealt with, and the end.
    marks: dict[int, tuple[int, int]]


def replayed_headers(record: ConsumerRecord) -> list[tuple[str, bytes]]:
    """The original headers (no `dlq.*`) and where this replay came from."""
    kept = [(k, v) for k, v in record.headers or () if not k.startswith("dlq.")]
    origin = f"{record.topic}[{record.partition}]@{record.offset}"
    return [*kept, (REPLAYED_FROM, origin.encode())]


class DeadLetters:
    """One client over some dead-letter topics: counts, reads, replays, marks as handled."""

    def __init__(
        self, bootstrap: str, *, group: str = HANDLED_GROUP, security: KafkaSecurity = PLAINTEXT
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,  # only for its committed offsets: never joins, never subscribes
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="dead-letters",
            **security.client_options(),
        )

    async def __aenter__(self) -> DeadLetters:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def backlogs(self, topics: Sequence[str]) -> list[Backlog]:
        """Every topic's counts; a topic the cluster does not know counts 0."""
        tps = await topic_partitions(self._consumer, list(topics), timeout_s=3)
        if not tps:
            return [Backlog(t, 0, 0, {}) for t in topics]
        starts = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        marks: dict[str, dict[int, tuple[int, int]]] = {t: {} for t in topics}
        for tp in tps:
            handled = await self._consumer.committed(tp)
            first = max(starts[tp], handled or 0)
            marks[tp.topic][tp.partition] = (min(first, ends[tp]), ends[tp])
        return [
            Backlog(
                topic,
                total=sum(
                    ends[TopicPartition(topic, p)] - starts[TopicPartition(topic, p)]
                    for p in marks[topic]
                ),
                waiting=sum(end - first for first, end in marks[topic].values()),
                marks=marks[topic],
            )
            for topic in topics
        ]

    async def read(
        self,
        topic: str,
        at: Sequence[tuple[int, int]] = (),
        *,
        waiting_only: bool = True,
        limit: int = 1000,
    ) -> list[ConsumerRecord]:
        """The records at the (partition, offset)s given, or else every record (past the handled
        mark when `waiting_only`) up to the end as it is now, at most `limit`."""
        [backlog] = await self.backlogs([topic])
        wanted: dict[int, set[int]] = {}
        for partition, offset in at:
            wanted.setdefault(partition, set()).add(offset)
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for partition, (first, end) in backlog.marks.items():
            if at:
                if partition in wanted:
                    ranges[TopicPartition(topic, partition)] = (min(wanted[partition]), end)
            else:
                start = first if waiting_only else 0
                if start < end:
                    ranges[TopicPartition(topic, partition)] = (start, end)
        found: list[ConsumerRecord] = []
        for tp, (start, end) in ranges.items():
            found.extend(await self._read_range(tp, start, end, wanted.get(tp.partition), limit))
        found.sort(key=lambda r: (r.partition, r.offset))
        return found[:limit]

    async def _read_range(
        self, tp: TopicPartition, start: int, end: int, only: set[int] | None, limit: int
    ) -> list[ConsumerRecord]:
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        position = start
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _READ_TIMEOUT_S
        while position < end and len(records) < limit and loop.time() < give_up:
            batch = await self._consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                position = record.offset + 1
                if record.offset < end and (only is None or record.offset in only):
                    records.append(record)
            if only is not None and all(r in {x.offset for x in records} for r in only):
                break
        return records

    async def replay(self, records: Sequence[ConsumerRecord]) -> None:
        """Publish the records again on their original topics; returns once Kafka has them."""
        producer = make_producer(self.bootstrap, "dead-letter-replay", security=self.security)
        await producer.start()
        try:
            sent = [
                await producer.send(
                    original_topic(r.topic), value=r.value, key=r.key, headers=replayed_headers(r)
                )
                for r in records
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        for r in records:
            log.info(
                "replayed dead letter %s[%d]@%d onto %s",
                r.topic,
                r.partition,
                r.offset,
                original_topic(r.topic),
            )

    async def mark_handled(
        self, topic: str, done: Sequence[tuple[int, int]], *, through: bool = False
    ) -> None:
        """Move the handled mark past the `done` (partition, offset)s: past the last of each
        partition when `through` (they were all the waiting ones, in order), else only where
        they are next in line (one dealt with out of order stays counted until those before
        it are)."""
        [backlog] = await self.backlogs([topic])
        offsets: dict[TopicPartition, int] = {}
        for partition, (first, _end) in backlog.marks.items():
            finished = {o for p, o in done if p == partition}
            if through:
                mark = max(finished, default=first - 1) + 1
            else:
                mark = first
                while mark in finished:
                    mark += 1
            if mark > first:
                offsets[TopicPartition(topic, partition)] = mark
        if offsets:
            self._consumer.assign(list(offsets))
            await self._consumer.commit(offsets)


class DeadLetterWatch:
    """Logs `dead letters waiting: <topic>=<n>, ...` at WARNING every `interval_s` while any
    of `topics` has dead letters past the handled mark."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        interval_s: float = 60.0,
        group: str = HANDLED_GROUP,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topics = list(topics)
        self.interval_s = interval_s
        self.group = group
        self.last: dict[str, int] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dead-letter-watch")

    async def stop(self, grace_s: float = 5.0) -> None:
        self._stopping.set()
        await finish_or_cancel(self._task, grace_s)

    async def check(self) -> dict[str, int]:
        """The waiting count of each topic that has any; logs them."""
        async with DeadLetters(
            self.bootstrap, group=self.group, security=self.security
        ) as dead_letters:
            backlogs = await dead_letters.backlogs(self.topics)
        self.last = {b.topic: b.waiting for b in backlogs if b.waiting}
        if self.last:
            log.warning(
                "dead letters waiting: %s (make dlq SERVICE=<service> ARGS=list)",
                ", ".join(f"{topic}={n}" for topic, n in sorted(self.last.items())),
            )
        return self.last

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.check()
            except Exception as exc:  # noqa: BLE001 - a watch must not die with the broker
                log.info("counting dead letters failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)


# -- the command line -----------------------------------------------------------------------


def _position(value: str) -> tuple[int, int]:
    partition, sep, offset = value.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not PARTITION:OFFSET")
    return int(partition), int(offset)


def _header(record: ConsumerRecord, name: str) -> str:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", errors="replace")
    return "-"


def _event_field(record: ConsumerRecord, name: str) -> str:
    """From the header the relay sets, else from the envelope (only that field is shown)."""
    found = _header(record, name)
    if found == "-":
        with contextlib.suppress(ValueError, AttributeError):
            found = str(orjson.loads(record.value or b"{}").get(name, "-"))
    return found


def describe(record: ConsumerRecord, *, value: bool = False, max_bytes: int = 500) -> str:
    key = record.key.decode("utf-8", errors="replace") if record.key else "-"
    event_type, event_id = _event_field(record, "event_type"), _event_field(record, "event_id")
    lines = [
        f"{record.topic}[{record.partition}]@{record.offset}  key={key}  "
        f"event_type={event_type}  event_id={event_id}",
        f"  consumer={_header(record, 'dlq.consumer')}  attempts={_header(record, 'dlq.attempts')}"
        f"  from={_header(record, 'dlq.topic')}[{_header(record, 'dlq.partition')}]"
        f"@{_header(record, 'dlq.offset')}",
        f"  error: {_header(record, 'dlq.error')}",
    ]
    if value:
        raw = record.value or b""
        text = raw[:max_bytes].decode("utf-8", errors="replace")
        more = f"… ({len(raw) - max_bytes} more bytes)" if len(raw) > max_bytes else ""
        lines.append(f"  value: {text}{more}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    prefix = args.topic_prefix
    # An operator's login, not a service's: replaying writes to any topic (deploy/k8s: the
    # KafkaUser dlq-admin). DLQ_KAFKA_SECURITY_PROTOCOL, DLQ_KAFKA_SASL_USERNAME, ...
    security = KafkaClientSettings(_env_prefix=ENV_PREFIX).kafka_security
    async with DeadLetters(
        args.bootstrap, group=prefix + HANDLED_GROUP, security=security
    ) as dead_letters:
        if args.command == "list":
            topics = service_dead_letter_topics(args.service, prefix)
            for b in await dead_letters.backlogs(topics):
                print(f"{b.topic}  waiting={b.waiting}  total={b.total}")
            return 0
        topic = dead_letter_topic(args.topic, prefix)
        if args.command == "show":
            records = await dead_letters.read(
                topic, args.at, waiting_only=not args.all, limit=args.limit
            )
            for record in records:
                print(describe(record, value=args.value, max_bytes=args.max_bytes))
            print(f"{len(records)} dead letter(s) shown")
            return 0
        if not args.at and not args.all:
            print(f"{args.command}: give PARTITION:OFFSET positions or --all", file=sys.stderr)
            return 2
        records = await dead_letters.read(topic, args.at, limit=args.limit)
        if args.command == "replay":
            await dead_letters.replay(records)
        done = [(r.partition, r.offset) for r in records]
        await dead_letters.mark_handled(topic, done, through=not args.at)
        verb = "replayed onto " + original_topic(topic) if args.command == "replay" else "discarded"
        print(f"{verb}: {len(records)} dead letter(s): {', '.join(f'{p}:{o}' for p, o in done)}")
        missing = sorted(set(args.at) - set(done))
        if missing:
            print(f"not found: {', '.join(f'{p}:{o}' for p, o in missing)}", file=sys.stderr)
            return 1
        return 0


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m ccshared.dlq", description=__doc__.split("\n")[0])
    cli.add_argument(
        "--bootstrap", default=os.environ.get(ENV_PREFIX + "KAFKA_BOOTSTRAP", LOCAL_KAFKA)
    )
    cli.add_argument("--topic-prefix", default="", help="the services' KAFKA_TOPIC_PREFIX")
    cli.add_argument("--service", help="list only the twins of the topics this service consumes")
    commands = cli.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="dead-letter topics with their counts")
    for name, what in (
        ("show", "inspect dead letters (those waiting, or the positions given)"),
        ("replay", "publish dead letters again on the original topic, mark them handled"),
        ("discard", "mark dead letters handled without replaying them (they stay in the topic)"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("topic", help="e.g. router.tickets or router.tickets.dlq")
        command.add_argument("at", nargs="*", type=_position, metavar="PARTITION:OFFSET")
        command.add_argument("--limit", type=int, default=1000 if name != "show" else 20)
        command.add_argument(
            "--all",
            action="store_true",
            help="every waiting one" if name != "show" else "handled ones too",
        )
        if name == "show":
            command.add_argument("--value", action="store_true", help="print values (truncated)")
            command.add_argument("--max-bytes", type=int, default=500)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_run(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
