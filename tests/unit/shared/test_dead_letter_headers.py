"""The diagnostics a dead letter carries in its headers: redacted, and cheap to make whatever
the size of the failing exception's text."""

import asyncio
import time
from typing import Any

from aiokafka.structs import ConsumerRecord

from ccshared.consumer import IdempotentConsumer


class _Producer:
    def __init__(self) -> None:
        self.headers: dict[str, bytes] = {}

    async def start(self) -> None:
        return None

    async def send_and_wait(self, topic: str, **kwargs: Any) -> None:
        self.headers = dict(kwargs["headers"])


def _dead_letter_headers(exc: BaseException) -> tuple[dict[str, bytes], float]:
    producer = _Producer()
    consumer = IdempotentConsumer(
        engine=None,  # type: ignore[arg-type]  # dead-lettering touches no database
        bootstrap="127.0.0.1:1",
        group_id="test",
        topics=["t"],
        handler=None,  # type: ignore[arg-type]
        producer_factory=lambda: producer,  # type: ignore[arg-type,return-value]
    )
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "t", 0, 7, 0, 0, b"k", b"v", None, 1, 1, []
    )
    start = time.perf_counter()
    asyncio.run(consumer._dead_letter(record, exc, 5))
    return producer.headers, time.perf_counter() - start


def test_a_huge_hostile_exception_text_is_cut_before_it_is_redacted() -> None:
    """'://a:' repeated made the redaction of the whole text quadratic: 12 s for 200,000
    characters, blocking the consumer's event loop while it dead-lettered."""
    headers, seconds = _dead_letter_headers(ValueError("://a:" * 400_000))
    assert seconds < 0.5
    assert len(headers["dlq.error"]) <= 1_000 * 3
    assert len(headers["dlq.trace"]) <= 4_000 * 3


def test_a_secret_at_the_cut_of_the_error_header_is_not_left_half_there() -> None:
    message = "x " * 490 + "postgresql://cc:hunter2hunter2@db/intake " + "y " * 1_000
    headers, _ = _dead_letter_headers(ValueError(message))
    assert b"hunt" not in headers["dlq.error"]
    assert b"hunt" not in headers["dlq.trace"]
    assert b"://cc:***@db" in headers["dlq.trace"]
