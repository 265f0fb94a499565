"""Dead-letter topic names and the headers of a replay (pure parts of ccshared.dlq)."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord

from ccshared.dlq import (
    dead_letter_topic,
    original_topic,
    replayed_headers,
    service_dead_letter_topics,
)
from ccshared.events.catalog import CATALOG


def test_a_topic_or_its_twin_names_the_twin_under_the_prefix() -> None:
    assert dead_letter_topic("router.tickets") == "router.tickets.dlq"
    assert dead_letter_topic("router.tickets.dlq") == "router.tickets.dlq"
    assert dead_letter_topic("router.tickets", "bench.") == "bench.router.tickets.dlq"
    assert dead_letter_topic("bench.router.tickets.dlq", "bench.") == "bench.router.tickets.dlq"


def test_the_original_topic_is_the_twin_without_its_suffix_prefix_kept() -> None:
    assert original_topic("bench.sla.events.dlq") == "bench.sla.events"
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        original_topic("sla.events")


def test_a_service_watches_the_twins_of_what_it_consumes() -> None:
    assert service_dead_letter_topics("sla", "p.") == [
        "p.router.tickets.dlq",
        "p.feedback.events.dlq",  # customer.segment_changed from the key-account registry
    ]
    assert len(service_dead_letter_topics(None)) == len(CATALOG.topics)


def test_a_replay_keeps_the_original_headers_drops_the_dlq_ones_and_says_where_from() -> None:
    record = ConsumerRecord(
        topic="router.tickets.dlq",
        partition=2,
        offset=17,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"{}",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=[
            ("event_type", b"ticket.opened"),
            ("dlq.error", b"ValueError: boom"),
            ("dlq.replayed_from", b"router.tickets.dlq[0]@3"),
            ("dlq.attempts", b"5"),
        ],
    )
    assert replayed_headers(record) == [
        ("event_type", b"ticket.opened"),
        ("dlq.replayed_from", b"router.tickets.dlq[2]@17"),
    ]
