"""Rows the relay parks without sending them: Kafka would refuse them for good."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ccshared.outbox import kafka_headers, refusal_before_sending

LIMIT = 1_048_576


def row(value: bytes, key: str = "", headers: str = "{}") -> dict[str, Any]:
    return {
        "id": 1,
        "topic": "intake.contacts",
        "key": key or str(uuid.uuid4()),
        "event_id": uuid.uuid4(),
        "event_type": "contact.received",
        "value": value,
        "headers": headers,
    }


def exact_size(r: dict[str, Any]) -> int:
    return int(
        DefaultRecordBatchBuilder.estimate_size_in_bytes(
            r["key"].encode(), r["value"], kafka_headers(r)
        )
    )


@pytest.mark.parametrize("key", ["ascii-key", "客户" * 300])
def test_a_record_one_byte_over_the_producers_limit_is_refused_and_one_at_it_is_not(
    key: str,
) -> None:
    headers = '{"correlation_id": "关联"}'
    # The longest value whose record still fits (the length varints grow with the value).
    n = LIMIT - exact_size(row(b"", key=key, headers=headers)) + 8
    while exact_size(row(b"x" * n, key=key, headers=headers)) > LIMIT:
        n -= 1
    at_limit = row(b"x" * n, key=key, headers=headers)
    over = row(b"x" * (n + 1), key=key, headers=headers)
    assert exact_size(at_limit) <= LIMIT < exact_size(over)
    assert refusal_before_sending(at_limit, topic="t", max_request_size=LIMIT) is None
    why = refusal_before_sending(over, topic="t", max_request_size=LIMIT)
    assert why is not None
    assert why.startswith("MessageSizeTooLargeError")
    assert f"{exact_size(over)} bytes" in why


@pytest.mark.parametrize("topic", ["bad topic", "a/b", "", ".", "..", "x" * 250, "话题"])
def test_a_row_for_an_illegal_topic_name_is_refused(topic: str) -> None:
    why = refusal_before_sending(row(b"{}"), topic=topic, max_request_size=LIMIT)
    assert why is not None
    assert why.startswith("InvalidTopicError")


@pytest.mark.parametrize("topic", ["intake.contacts", "bench.router.tickets.dlq", "a-b_C.9"])
def test_legal_topic_names_pass(topic: str) -> None:
    assert refusal_before_sending(row(b"{}"), topic=topic, max_request_size=LIMIT) is None
