"""Kafka clients configured the one way this system uses them, and topic provisioning."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from ccshared.events.catalog import CATALOG, DLQ_SUFFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaSecurity:
    """How every client of a service authenticates to Kafka and encrypts: PLAINTEXT for the
    local stack; SASL_SSL with SCRAM-SHA-512 on a Strimzi cluster (deploy/k8s) or most managed
    services. `cafile` None trusts the system's CAs."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = ""
    cafile: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka producer, consumer or admin client."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.ssl_context()
        if self.protocol.startswith("SASL_"):
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options

    def ssl_context(self) -> ssl.SSLContext:
        # Verifies the brokers' certificates and host names (create_ssl_context's defaults).
        context: ssl.SSLContext = create_ssl_context(cafile=self.cafile)
        return context

    def __repr__(self) -> str:  # never the password, in a log or a traceback
        return f"KafkaSecurity(protocol={self.protocol!r}, username={self.username!r})"


PLAINTEXT = KafkaSecurity()


def make_producer(
    bootstrap: str, client_id: str, *, security: KafkaSecurity = PLAINTEXT
) -> AIOKafkaProducer:
    # Idempotent + acks=all: broker-side dedupe of retried batches and per-partition order.
    # An idempotent producer that hits OutOfOrderSequenceNumber stays broken: callers recreate
    # it on any send failure (see OutboxRelay), never reuse it.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
        **security.client_options(),
    )


# Dead letters wait for an operator (`make dlq`): their topics never delete them by age.
DLQ_RETENTION_MS = "-1"


def new_topics(
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = -1,
    min_insync_replicas: int | None = None,
) -> list[NewTopic]:
    """The topics `ensure_topics` asks the cluster to create. A replication factor of -1 and no
    min.insync.replicas take the broker's defaults (`default.replication.factor`,
    `min.insync.replicas`), so a three-broker cluster configured for 3 and 2 gets 3 and 2;
    dead-letter twins keep their records for ever."""
    topics = []
    for name in names:
        configs: dict[str, str] = {}
        if min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(min_insync_replicas)
        if name.endswith(DLQ_SUFFIX):
            configs["retention.ms"] = DLQ_RETENTION_MS
        # aiokafka's NewTopic takes -1 only beside a replica assignment; an empty one is
        # sent as none, and the broker then applies its default.
        topics.append(
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                replica_assignments={} if replication_factor == -1 else None,
                topic_configs=configs,
            )
        )
    return topics


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str] | None = None,
    *,
    partitions: int = 6,
    client_id: str = "topic-provisioner",
    prefix: str = "",
    replication_factor: int = -1,
    min_insync_replicas: int | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """Create missing topics (the catalog's and their dead-letter twins by default), each name
    with `prefix` before it; dead-letter twins made before they were kept for ever are
    changed to keep them for ever. Raises if the cluster refuses to create one."""
    wanted = [prefix + n for n in (names if names is not None else CATALOG.all_topic_names())]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=client_id, **security.client_options()
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            response = await admin.create_topics(
                new_topics(
                    missing,
                    partitions=partitions,
                    replication_factor=replication_factor,
                    min_insync_replicas=min_insync_replicas,
                )
            )
            refused = [
                f"{topic}: {(message or [code])[0]}"
                for topic, code, *message in response.topic_errors
                if code not in (0, TopicAlreadyExistsError.errno)  # another replica won the race
            ]
            if refused:
                raise KafkaError(f"topics not created: {'; '.join(refused)}")
            log.info("created topics %s", missing)
        await _keep_dead_letters(admin, [n for n in wanted if n in existing])
        return missing
    finally:
        await admin.close()


async def _keep_dead_letters(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Set retention.ms=-1 on existing dead-letter topics that lack it. AlterConfigs replaces
    a topic's whole set of overrides, so the ones it has are sent again with it."""
    dlqs = [n for n in names if n.endswith(DLQ_SUFFIX)]
    if not dlqs:
        return
    described = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in dlqs]
    )
    changes = []
    for response in described:
        for _code, _message, _type, name, entries in response.resources:
            overrides = {e[0]: e[1] for e in entries if _is_topic_override(e)}
            if overrides.get("retention.ms") != DLQ_RETENTION_MS:
                overrides["retention.ms"] = DLQ_RETENTION_MS
                changes.append(ConfigResource(ConfigResourceType.TOPIC, name, overrides))
    if changes:
        await admin.alter_configs(changes)
        log.info(
            "dead-letter topics now keep their records for ever: %s", [c.name for c in changes]
        )


_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source of a topic's own override


def _is_topic_override(entry: tuple[object, ...]) -> bool:
    # (name, value, read_only, config_source, is_sensitive, synonyms) from v1 on; v0 has
    # is_default in the fourth place instead.
    return entry[3] == _DYNAMIC_TOPIC_CONFIG if len(entry) >= 6 else entry[3] is False


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str], timeout_s: float = 10.0
) -> list[TopicPartition]:
    """Every partition of the topics, once the client's metadata knows them all."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        # Asking for a topic adds it to what the client's next metadata request covers.
        found = {t: consumer.partitions_for_topic(t) for t in topics}
        if all(found.values()) or loop.time() > end:
            return [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps or ())]
        await consumer._client.force_metadata_update()


async def commit_group_at_end(
    bootstrap: str, group: str, topics: list[str], *, security: KafkaSecurity = PLAINTEXT
) -> None:
    """Give a consumer group committed offsets at the current end of each partition, so a
    service started with it reads only what is published from now on (not the history)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        **security.client_options(),
    )
    await consumer.start()
    try:
        # Topics created a moment ago may not be in the client's metadata yet: wait for them.
        tps = await topic_partitions(consumer, topics)
        missing = set(topics) - {tp.topic for tp in tps}
        if missing:
            raise RuntimeError(f"topics not known to the cluster: {', '.join(sorted(missing))}")
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.commit({tp: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()


async def kafka_reachable(
    bootstrap: str, timeout_s: float = 3.0, *, security: KafkaSecurity = PLAINTEXT
) -> bool:
    """True when the cluster answers a metadata request within the timeout."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="readiness",
        request_timeout_ms=int(timeout_s * 1000),
        **security.client_options(),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            await admin.list_topics()
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            log.debug("closing readiness admin client failed", exc_info=True)
