"""Feedback running in-process against the real stack, with its own database and consumer
groups, a tail on feedback.events and a tiny local HTTP receiver for its webhooks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel, SecretStr

from ccshared.db import asyncpg_dsn
from ccshared.events import Envelope, new_event
from ccshared.kafka import commit_group_at_end, ensure_topics, make_producer
from ccshared.outbox import OutboxRelay
from ccshared.service import runtime_of
from feedback.app import create_app
from feedback.domain.tokens import issue_token
from feedback.settings import FeedbackSettings
from feedback.tasks.scheduler import FeedbackScheduler
from tests.conftest import TOPIC_PREFIX, topic
from tests.helpers import as_supervisor, wait_until
from tests.integration.intake.conftest import TopicTail

SECRET = "integration-test-token-secret"
CONSUMED = ("router.tickets", "sla.events", "intake.contacts")
# Each consumer group of the app and the catalog topic it reads.
CONSUMER_GROUPS = (
    ("tickets", "router.tickets"),
    ("sla", "sla.events"),
    ("contacts", "intake.contacts"),
    ("customers", "router.tickets"),
)


@dataclass
class Feedback:
    client: httpx.AsyncClient
    db: asyncpg.Pool
    settings: FeedbackSettings
    producer: AIOKafkaProducer
    scheduler: FeedbackScheduler
    # Catalog topic -> the topic this instance actually reads it from (before TOPIC_PREFIX).
    topics: dict[str, str] = field(default_factory=dict)
    relay: OutboxRelay | None = None  # the service's outbox relay (a test may stop it)

    def topic_of(self, catalog_topic: str) -> str:
        """Where on Kafka this instance reads a catalog topic."""
        return topic(self.topics.get(catalog_topic, catalog_topic))

    async def publish(self, *payloads: BaseModel, producer: str = "router") -> list[Envelope]:
        events = [new_event(p, producer=producer) for p in payloads]
        for event in events:
            await self.producer.send_and_wait(
                self.topic_of(event.topic),
                event.to_bytes(),
                key=event.key.encode(),
                headers=[("event_type", event.event_type.encode())],
            )
        return events

    async def survey_of(self, ticket_id: uuid.UUID) -> dict[str, Any] | None:
        response = await self.client.get(f"/v1/tickets/{ticket_id}/survey")
        return response.json() if response.status_code == 200 else None

    async def wait_survey(
        self, ticket_id: uuid.UUID, status: str, timeout: float = 30
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            survey = await self.survey_of(ticket_id)
            return survey if survey and survey["status"] == status else None

        result: dict[str, Any] = await wait_until(check, timeout=timeout)
        return result

    def token(self, survey_id: str | uuid.UUID, expires_at: datetime) -> str:
        return issue_token(uuid.UUID(str(survey_id)), expires_at, SECRET.encode())

    async def token_of(self, ticket_id: uuid.UUID) -> str:
        survey = await self.wait_survey(ticket_id, "sent")
        return self.token(survey["survey_id"], datetime.fromisoformat(survey["expires_at"]))

    async def scheduler_rounds(self, rounds: int) -> None:
        """Wait until the scheduler has run `rounds` more full rounds."""
        target = self.scheduler.stats.ticks + rounds

        async def done() -> bool:
            self.scheduler.wake()
            return self.scheduler.stats.ticks >= target

        await wait_until(done, timeout=20)


@pytest.fixture
async def feedback_factory(
    fresh_database: str, kafka_bootstrap: str
) -> AsyncIterator[Callable[..., Awaitable[Feedback]]]:
    started: list[tuple[Any, httpx.AsyncClient, asyncpg.Pool, AIOKafkaProducer]] = []
    private: list[str] = []
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)

    async def start(*, private_topics: bool = True, **overrides: Any) -> Feedback:
        """By default the app reads this test's own copies of the consumed topics, so events
        other tests (or running services) publish meanwhile neither reach its webhooks nor its
        KPIs; private_topics=False reads the catalog's topics themselves."""
        service_name = f"feedback-t{uuid.uuid4().hex[:10]}"
        topics = {t: f"{service_name}.{t}" if private_topics else t for t in CONSUMED}
        if private_topics:
            names = [topic(n) for t in topics.values() for n in (t, t + ".dlq")]
            await ensure_topics(kafka_bootstrap, names, partitions=3)
            private.extend(names)
        # Fresh consumer groups start at the topics' ends: this app reads only what is
        # published from now on, not every event other tests ever published.
        for name, catalog in CONSUMER_GROUPS:
            await commit_group_at_end(
                kafka_bootstrap, f"{service_name}.{name}", [topic(topics[catalog])]
            )
        values: dict[str, Any] = {
            "tickets_topic": topics["router.tickets"],
            "sla_topic": topics["sla.events"],
            "contacts_topic": topics["intake.contacts"],
            "service_name": service_name,
            "database_url": SecretStr(fresh_database),
            "kafka_bootstrap": kafka_bootstrap,
            "log_json": False,
            "outbox_poll_interval_s": 0.2,
            "token_secret": SecretStr(SECRET),
            "public_base_url": "http://feedback.test",
            "survey_delay_phone_s": 0,
            "survey_delay_email_s": 0,
            "survey_delay_chat_s": 0,
            "survey_delay_social_s": 0,
            "scheduler_interval_s": 0.1,
            "webhook_retry_base_s": 0.05,
            "webhook_retry_cap_s": 0.2,
            "webhook_timeout_s": 2,
            # The receiver below listens on loopback, which webhooks may not reach otherwise.
            "webhook_allow_hosts": "127.0.0.1",
            **overrides,
        }
        settings = FeedbackSettings(**values)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://feedback.test",
            headers=as_supervisor(),
        )
        await wait_until(lambda: _ready(client), timeout=60)
        db = await asyncpg.create_pool(asyncpg_dsn(fresh_database), min_size=1, max_size=3)
        producer = make_producer(kafka_bootstrap, "fake-router")
        await producer.start()
        started.append((lifespan, client, db, producer))
        scheduler = runtime_of(app).parts.scheduler
        return Feedback(client, db, settings, producer, scheduler, topics, runtime_of(app).relay)

    yield start
    for lifespan, client, db, producer in reversed(started):
        await producer.stop()
        await client.aclose()
        await db.close()
        await lifespan.__aexit__(None, None, None)
    if private:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(private)
        finally:
            await admin.close()


@pytest.fixture
async def feedback(feedback_factory: Callable[..., Awaitable[Feedback]]) -> Feedback:
    return await feedback_factory()


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


@pytest.fixture
async def feedback_events(kafka_bootstrap: str) -> AsyncIterator[FeedbackEvents]:
    async with FeedbackEvents(kafka_bootstrap, topic("feedback.events")) as tail:
        yield tail


class FeedbackEvents(TopicTail):
    """feedback.events since the test began, decoded."""

    async def __aenter__(self) -> FeedbackEvents:
        await super().__aenter__()
        return self

    def events(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        out = []
        for record in self.records:
            event = orjson.loads(record.value)
            payload = event["payload"]
            if event["event_type"] == event_type and all(
                payload.get(k) == (str(v) if isinstance(v, uuid.UUID) else v)
                for k, v in match.items()
            ):
                out.append(event)
        return out

    async def wait_event(
        self, event_type: str, count: int = 1, timeout: float = 30, **match: Any
    ) -> list[dict[str, Any]]:
        await self.wait_for(lambda _: len(self.events(event_type, **match)) >= count, timeout)
        return self.events(event_type, **match)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records requests and answers scripted
    statuses per path (200 once the script is used up)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(path, headers, body))
            statuses = self.script.get(path, [])
            status = statuses.pop(0) if statuses else 200
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    hook.server = await asyncio.start_server(hook._handle, "127.0.0.1", 0)
    yield hook
    hook.server.close()
    await hook.server.wait_closed()


@dataclass
class SlowReceiver:
    """A hostile receiver on 127.0.0.1: answers 200 and then a chunked body that never ends,
    either 64 KB chunks as fast as it can (/endless) or one byte every 0.5 s (/drip)."""

    server: asyncio.Server | None = None
    requests: int = 0
    open_connections: int = 0
    bytes_sent: int = 0

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def hung_up(self) -> bool:
        """The client has closed every connection."""
        return self.requests > 0 and self.open_connections == 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            drip = b" /drip " in head.split(b"\r\n", 1)[0]
            chunk, pause = (b"x", 0.5) if drip else (b"x" * 65536, 0.0)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                self.bytes_sent += len(chunk)
                await asyncio.sleep(pause)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what a bounded client does
        finally:
            self.open_connections -= 1
            writer.close()


@pytest.fixture
async def slow_receiver() -> AsyncIterator[SlowReceiver]:
    hook = SlowReceiver()
    hook.server = await asyncio.start_server(hook._handle, "127.0.0.1", 0)
    yield hook
    hook.server.close()
    await hook.server.wait_closed()


def now() -> datetime:
    return datetime.now(UTC)
