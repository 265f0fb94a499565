"""Topic provisioning against the real broker: replication settings and dead-letter retention."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from ccshared.kafka import ensure_topics

_TOPIC_OVERRIDE = 1  # DescribeConfigs config_source: set on the topic itself


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    made: list[str] = []
    client.made = made  # type: ignore[attr-defined]
    yield client
    existing = set(await client.list_topics())
    if gone := [t for t in made if t in existing]:
        await client.delete_topics(gone)
    await client.close()


def _name(admin: AIOKafkaAdminClient, suffix: str = "") -> str:
    name = f"test.{uuid.uuid4().hex[:10]}{suffix}"
    admin.made.append(name)  # type: ignore[attr-defined]
    return name


async def overrides(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """The configs set on the topic itself (not inherited from the broker)."""
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [(_, _, _, _, entries)] = response.resources
    return {e[0]: e[1] for e in entries if e[3] == _TOPIC_OVERRIDE}


async def test_a_created_topic_has_the_configured_min_insync_replicas(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    name = _name(admin)
    assert await ensure_topics(kafka_bootstrap, [name], partitions=1, min_insync_replicas=1) == [
        name
    ]
    assert (await overrides(admin, name)).get("min.insync.replicas") == "1"


async def test_unset_min_insync_replicas_leaves_the_brokers_default(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    name = _name(admin)
    await ensure_topics(kafka_bootstrap, [name], partitions=1)
    assert "min.insync.replicas" not in await overrides(admin, name)


async def test_a_created_dead_letter_topic_never_deletes_its_records(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    name = _name(admin)
    await ensure_topics(kafka_bootstrap, [name, name + ".dlq"], partitions=1)
    admin.made.append(name + ".dlq")  # type: ignore[attr-defined]
    assert (await overrides(admin, name + ".dlq")).get("retention.ms") == "-1"
    assert "retention.ms" not in await overrides(admin, name)


async def test_an_existing_dead_letter_topic_is_changed_to_keep_its_records_and_its_overrides(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    name = _name(admin, ".dlq")
    await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"max.message.bytes": "500000"})])
    assert "retention.ms" not in await overrides(admin, name)
    assert await ensure_topics(kafka_bootstrap, [name]) == []
    assert await overrides(admin, name) == {"retention.ms": "-1", "max.message.bytes": "500000"}


async def test_a_replication_factor_the_cluster_cannot_give_fails_loudly(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    """Before, the refusal in the response was ignored and "created topics" logged."""
    name = _name(admin)
    with pytest.raises(KafkaError, match="replication factor"):
        await ensure_topics(kafka_bootstrap, [name], partitions=1, replication_factor=3)
