"""Intake running in-process against the real stack, with its own database."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from pydantic import SecretStr

from ccshared.db import asyncpg_dsn
from ccshared.events import new_event
from ccshared.events.catalog import ROUTER_TICKETS
from ccshared.events.payloads import MessageOutbound, NotificationEmailRequested
from ccshared.kafka import commit_group_at_end, ensure_topics, make_producer
from ccshared.service import runtime_of
from deploy.local.mailbox import Mailbox
from intake.app import create_app
from intake.consumers.customers import CUSTOMER_MERGES
from intake.consumers.outbound import OUTBOUND_MESSAGES
from intake.consumers.tickets import TICKET_LINKS
from intake.db.api_keys import create_key
from intake.settings import IntakeSettings
from tests.conftest import TOPIC_PREFIX, topic
from tests.helpers import wait_until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ALL_CHANNELS = ["phone", "email", "chat", "social"]


def samples() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / "contacts.jsonl").read_text().splitlines()]


def bad_samples() -> list[dict[str, Any]]:
    lines = (FIXTURES / "bad_contacts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@dataclass
class Intake:
    app: FastAPI
    client: httpx.AsyncClient
    db: asyncpg.Pool
    database_url: str

    async def new_key(
        self,
        channels: list[str] | None = None,
        *,
        rate: float = 10_000,
        burst: int = 10_000,
        name: str = "test",
        **options: Any,
    ) -> str:
        """A key of integration `name` (keys with the same name are one integration)."""
        _, plaintext = await create_key(
            self.db,
            name=name,
            channels=channels or ALL_CHANNELS,
            rate_per_s=rate,
            burst=burst,
            **options,
        )
        return plaintext

    async def post(
        self, body: Any, key: str, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/contacts", json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}
        )

    async def count(self, table: str) -> int:
        return int(await self.db.fetchval(f"SELECT count(*) FROM {table}"))

    async def published(self) -> int:
        return runtime_of(self.app).relay.stats.published


@pytest.fixture
async def intake_factory(
    fresh_database: str, kafka_bootstrap: str
) -> AsyncIterator[Callable[..., Awaitable[Intake]]]:
    started: list[tuple[Any, httpx.AsyncClient, asyncpg.Pool]] = []

    async def start(database_url: str | None = None, **overrides: Any) -> Intake:
        url = database_url or fresh_database
        # A consumer group of its own, starting at the end of the router's ticket topic: an
        # intake shares no partitions with another test's (or this test's other) intake, and
        # reads only the ticket events published from now on, whenever its group join ends.
        suffix = f".test-{uuid.uuid4().hex[:8]}"
        for spec in (TICKET_LINKS, CUSTOMER_MERGES, OUTBOUND_MESSAGES):
            await ensure_topics(kafka_bootstrap, spec.topics, prefix=TOPIC_PREFIX)
            await commit_group_at_end(
                kafka_bootstrap, f"intake.{spec.name}{suffix}", [topic(t) for t in spec.topics]
            )
        settings = IntakeSettings(
            database_url=SecretStr(url),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            api_key_cache_s=0,
            outbox_poll_interval_s=0.2,
            consumer_group_suffix=suffix,
            **overrides,
        )
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")
        await wait_until(lambda: _ready(client), timeout=30)
        db = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=3)
        started.append((lifespan, client, db))
        return Intake(app, client, db, url)

    yield start
    for lifespan, client, db in reversed(started):
        await client.aclose()
        await db.close()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def intake(intake_factory: Callable[..., Awaitable[Intake]]) -> Intake:
    return await intake_factory()


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


class TopicTail:
    """Reads what is published to a topic after the tail was opened."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[Any] = []
        self.consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicTail:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything new is published
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.consumer is not None
        await self.consumer.stop()

    async def poll(self) -> list[Any]:
        assert self.consumer is not None
        batch = await self.consumer.getmany(timeout_ms=100)
        for records in batch.values():
            self.records.extend(records)
        return self.records

    async def wait_for(
        self, predicate: Callable[[list[Any]], bool], timeout: float = 20
    ) -> list[Any]:
        async def check() -> bool:
            return predicate(await self.poll())

        await wait_until(check, timeout=timeout)
        return self.records


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    """A real SMTP server (deploy/local/mailbox.py) on a free port, keeping what it receives
    under the test's own directory."""
    box = Mailbox(tmp_path / "mail", "127.0.0.1", free_port()).start()
    yield box
    box.stop()


async def publish_outbound(
    bootstrap: str, *messages: MessageOutbound | NotificationEmailRequested, times: int = 1
) -> None:
    """Publishes message.outbound (or notification.email_requested) as the router does
    (`times` > 1: redelivered)."""
    producer = make_producer(bootstrap, "fake-router")
    await producer.start()
    try:
        for message in messages:
            event = new_event(message, producer="router")
            for _ in range(times):
                await producer.send_and_wait(
                    topic(ROUTER_TICKETS),
                    event.to_bytes(),
                    key=event.key.encode(),
                    headers=[("event_type", event.event_type.encode())],
                )
    finally:
        await producer.stop()
