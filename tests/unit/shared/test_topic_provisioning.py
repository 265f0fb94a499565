"""What topic provisioning asks the cluster for (issue 15: replication from configuration)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from ccshared.kafka import new_topics
from ccshared.settings import ServiceSettings


def _request(topic: object) -> tuple[object, ...]:
    return AIOKafkaAdminClient._convert_new_topic_request(topic)  # type: ignore[no-any-return]


def test_unset_replication_asks_for_the_brokers_defaults() -> None:
    settings = ServiceSettings(service_name="svc")
    [topic] = new_topics(
        ["intake.contacts"],
        partitions=6,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )
    # -1 and no assignment: the broker's default.replication.factor; no min.insync override.
    assert _request(topic) == ("intake.contacts", 6, -1, [], [])


def test_configured_replication_and_min_insync_replicas_are_asked_for() -> None:
    settings = ServiceSettings(
        service_name="svc", topic_replication_factor=3, topic_min_insync_replicas=2
    )
    [topic] = new_topics(
        ["router.tickets"],
        partitions=6,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )
    assert _request(topic) == ("router.tickets", 6, 3, [], [("min.insync.replicas", "2")])


def test_dead_letter_twins_keep_their_records_for_ever() -> None:
    topic, twin = new_topics(["sla.events", "sla.events.dlq"], partitions=3)
    assert topic.topic_configs == {}
    assert twin.topic_configs == {"retention.ms": "-1"}
