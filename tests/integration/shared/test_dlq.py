"""Dead letters against the real Kafka: counted, inspected, replayed once, warned about."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared import dlq
from ccshared.consumer import IdempotentConsumer, PermanentError
from ccshared.dlq import DeadLetters, DeadLetterWatch
from ccshared.events import Envelope
from tests.helpers import wait_until
from tests.integration.shared import test_consumer
from tests.integration.shared.conftest import read_all
from tests.integration.shared.test_consumer import event, labels, record_effect

# The consumer tests' fixtures: a table of effects, and consumers of the test's topic.
effects = test_consumer.effects
make_consumer = test_consumer.make_consumer


@pytest.fixture
def handled_group() -> str:
    return f"test-dlq-handled-{uuid.uuid4().hex[:8]}"


async def dead_letter_one(
    make_consumer: Callable[..., IdempotentConsumer],
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
) -> tuple[Envelope, dict[str, bool]]:
    """A consumer that refuses one event (PermanentError) until `broken["on"]` is cleared;
    returns that event once it sits in the dead-letter topic, with the consumer running."""
    broken = {"on": True}
    poisoned = event("poisoned")

    async def handler(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        if broken["on"] and envelope.event_id == poisoned.event_id:
            raise PermanentError("no queue for this ticket")
        await record_effect(conn, envelope, payload)

    consumer = make_consumer(handler=handler)
    await consumer.start()
    _running.append(consumer)
    for e in (event("before"), poisoned, event("after")):
        await producer.send_and_wait(topic, value=e.to_bytes(), key=e.key.encode())
    await wait_until(lambda: _labels_are(effects, ["after", "before"]))
    await wait_until(lambda: _dead_lettered(consumer))
    return poisoned, broken


_running: list[IdempotentConsumer] = []


@pytest.fixture(autouse=True)
async def _stop_consumers(topic: str) -> object:  # stopped before the topic is deleted
    yield
    while _running:
        await _running.pop().stop()


async def _labels_are(engine: AsyncEngine, expected: list[str]) -> bool:
    return sorted(await labels(engine)) == expected


async def _dead_lettered(consumer: IdempotentConsumer) -> bool:
    return consumer.stats.dead_lettered == 1


async def test_replay_puts_a_dead_letter_back_on_its_topic_and_the_consumer_applies_it_once(
    make_consumer: Callable[..., IdempotentConsumer],
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    kafka_bootstrap: str,
    handled_group: str,
) -> None:
    poisoned, broken = await dead_letter_one(make_consumer, producer, topic, effects)
    async with DeadLetters(kafka_bootstrap, group=handled_group) as dead_letters:
        [backlog] = await dead_letters.backlogs([topic + ".dlq"])
        assert (backlog.total, backlog.waiting) == (1, 1)
        [record] = await dead_letters.read(topic + ".dlq")
        broken["on"] = False  # the cause is fixed (say, the queue was created)
        await dead_letters.replay([record])
        await dead_letters.mark_handled(topic + ".dlq", [(record.partition, record.offset)])
        await wait_until(lambda: _labels_are(effects, ["after", "before", "poisoned"]))
        # Replayed twice by mistake: still one effect (the consumer dedupes by event id).
        await dead_letters.replay([record])
        [backlog] = await dead_letters.backlogs([topic + ".dlq"])
    assert (backlog.total, backlog.waiting) == (1, 0)  # kept, but no longer waiting

    records = await read_all(kafka_bootstrap, topic, expected=5)
    replayed, again = [r for r in records if "dlq.replayed_from" in dict(r.headers)]
    assert Envelope.model_validate_json(replayed.value).event_id == poisoned.event_id
    assert replayed.key == poisoned.key.encode()
    headers = dict(replayed.headers)
    assert not {h for h in headers if h.startswith("dlq.") and h != "dlq.replayed_from"}
    assert headers["dlq.replayed_from"] == f"{topic}.dlq[{record.partition}]@0".encode()
    assert again.value == replayed.value
    consumer = _running[0]
    await wait_until(lambda: _seen(consumer, 4))
    assert sorted(await labels(effects)) == ["after", "before", "poisoned"]


async def _seen(consumer: IdempotentConsumer, n: int) -> bool:
    return consumer.stats.processed + consumer.stats.duplicates >= n


async def test_show_gives_the_error_and_the_consumer_and_the_value_only_on_request(
    make_consumer: Callable[..., IdempotentConsumer],
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    poisoned, _ = await dead_letter_one(make_consumer, producer, topic, effects)
    prefix, plain = topic.split(".", 1)
    cli = dlq.parser()
    base = ["--topic-prefix", f"{prefix}.", "show", plain]

    assert await dlq._run(cli.parse_args(base)) == 0
    out = capsys.readouterr().out
    assert "error: PermanentError: no queue for this ticket" in out
    assert f"event_id={poisoned.event_id}" in out
    assert "event_type=ticket.reopened" in out
    assert "attempts=1" in out
    assert "consumer=test-group-" in out
    assert "poisoned" not in out  # the value (its actor) only with --value

    assert await dlq._run(cli.parse_args([*base, "--value", "--max-bytes", "2000"])) == 0
    assert '"actor":"poisoned"' in capsys.readouterr().out


async def test_the_command_line_replays_every_waiting_dead_letter_under_the_topic_prefix(
    make_consumer: Callable[..., IdempotentConsumer],
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, broken = await dead_letter_one(make_consumer, producer, topic, effects)
    broken["on"] = False
    prefix, plain = topic.split(".", 1)
    cli = dlq.parser()

    assert await dlq._run(cli.parse_args(["--topic-prefix", f"{prefix}.", "replay", plain])) == 2
    capsys.readouterr()  # "give positions or --all": nothing replayed
    args = ["--topic-prefix", f"{prefix}.", "replay", f"{plain}.dlq", "--all"]
    assert await dlq._run(cli.parse_args(args)) == 0
    assert f"replayed onto {topic}: 1 dead letter(s)" in capsys.readouterr().out
    await wait_until(lambda: _labels_are(effects, ["after", "before", "poisoned"]))
    assert await dlq._run(cli.parse_args(args)) == 0
    assert "0 dead letter(s)" in capsys.readouterr().out  # handled: not replayed again


async def test_the_watch_warns_while_dead_letters_wait_and_stops_once_they_are_handled(
    make_consumer: Callable[..., IdempotentConsumer],
    producer: AIOKafkaProducer,
    topic: str,
    effects: AsyncEngine,
    kafka_bootstrap: str,
    handled_group: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = DeadLetterWatch(kafka_bootstrap, [topic + ".dlq"], interval_s=0.2, group=handled_group)
    caplog.set_level(logging.WARNING, logger="ccshared.dlq")
    watch.start()
    try:
        assert await watch.check() == {}
        await dead_letter_one(make_consumer, producer, topic, effects)
        await wait_until(lambda: _warned(caplog, f"dead letters waiting: {topic}.dlq=1"))

        async with DeadLetters(kafka_bootstrap, group=handled_group) as dead_letters:
            await dead_letters.mark_handled(
                topic + ".dlq",
                [(r.partition, r.offset) for r in await dead_letters.read(topic + ".dlq")],
            )
        await wait_until(lambda: _quiet(watch))
        caplog.clear()
        assert await watch.check() == {}
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await watch.stop()


async def _warned(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(r.levelno == logging.WARNING and text in r.getMessage() for r in caplog.records)


async def _quiet(watch: DeadLetterWatch) -> bool:
    return watch.last == {}
