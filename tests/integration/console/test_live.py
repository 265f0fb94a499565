"""The console's live stream against the real broker: GET /live served by a real uvicorn in the
test's loop (httpx's ASGITransport holds a response until it has ended, so a stream that never
ends cannot be read through it), events published to the suite's topics as the services would.

The router the console asks for an agent's queues is a stand-in answering the two routes it
reads (GET /v1/agents/{id}, GET /v1/queues) with the router's own field names."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from ccshared.db import asyncpg_dsn
from ccshared.events import new_event
from ccshared.events.payloads import (
    AgentStatusChanged,
    NotificationCreated,
    SlaWarning,
    TicketRouted,
)
from ccshared.kafka import make_producer
from console.live import Live
from tests.conftest import KAFKA_BOOTSTRAP, topic
from tests.helpers import wait_until
from tests.integration.console.conftest import Console

Factory = Callable[..., Awaitable[Console]]
SKILLS: dict[str, dict[str, int]] = {"cat": {"billing": 3}}


def stand_in_router() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/agents/{agent_id}")
    async def agent(agent_id: str) -> dict[str, Any]:
        return {"id": agent_id, "name": agent_id, "skills": SKILLS.get(agent_id, {})}

    @app.get("/v1/queues")
    async def queues() -> list[dict[str, Any]]:
        return [
            {"id": "general", "name": "General", "required_skills": []},
            {"id": "billing", "name": "Billing", "required_skills": ["billing"]},
        ]

    return app


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)


@dataclass
class Stream:
    """One browser's open /live: its frames as they come."""

    response: httpx.Response
    frames: asyncio.Queue[Frame | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        frame = Frame()
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    await self.frames.put(frame)
                    frame = Frame()
                elif line.startswith(":"):
                    frame.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "id":
                        frame.id = value
                    elif name == "event":
                        frame.event = value
                    elif name == "data":
                        frame.data = orjson.loads(value)
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            await self.frames.put(None)

    async def next(self, timeout: float = 20.0) -> Frame | None:
        async with asyncio.timeout(timeout):
            return await self.frames.get()

    async def next_event(self, timeout: float = 20.0) -> Frame:
        """The next frame that is an event (not a heartbeat or a bare cursor)."""
        while True:
            frame = await self.next(timeout)
            assert frame is not None, "the stream ended"
            if frame.event is not None:
                return frame

    def received(self) -> list[Frame]:
        """The frames already here (without waiting)."""
        found = []
        while not self.frames.empty():
            frame = self.frames.get_nowait()
            if frame is not None:
                found.append(frame)
        return found


@dataclass
class LiveConsole:
    console: Console
    base_url: str
    client: httpx.AsyncClient
    sessions: dict[str, str] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)

    @property
    def live(self) -> Live:
        live: Live = self.console.app.state.runtime.parts.live
        return live

    async def user(self, user_id: str, role: str) -> str:
        browser = await self.console.signed_in_client(user_id, role)
        try:
            self.sessions[user_id] = browser.cookies["cc_session"]
        finally:
            await browser.aclose()
        return user_id

    @contextlib.asynccontextmanager
    async def stream(self, user_id: str, last_event_id: str | None = None) -> AsyncIterator[Stream]:
        headers = {"Accept": "text/event-stream", "Cookie": f"cc_session={self.sessions[user_id]}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        request = self.client.build_request("GET", "/live", headers=headers)
        response = await self.client.send(request, stream=True)
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        stream.task = asyncio.create_task(stream.read())

        async def opened() -> bool:  # retry: and the cursor come first
            return not stream.frames.empty()

        await wait_until(opened, timeout=10)
        try:
            yield stream
        finally:
            await response.aclose()
            stream.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream.task

    async def publish(self, *payloads: BaseModel) -> list[str]:
        """Publishes as the router and SLA would; the events' ids."""
        producer = make_producer(KAFKA_BOOTSTRAP, "console-live-test")
        await producer.start()
        ids = []
        try:
            for payload in payloads:
                event = new_event(payload, producer="test")
                await producer.send_and_wait(
                    topic(event.topic),
                    event.to_bytes(),
                    key=event.key.encode(),
                    headers=[("event_type", event.event_type.encode())],
                )
                ids.append(str(event.event_id))
        finally:
            await producer.stop()
        return ids

    async def buffered(self, event_ids: list[str]) -> None:
        """Waits until the replica has read these events."""
        wanted = set(event_ids)

        async def all_read() -> bool:
            seen = {
                orjson.loads(e.frame.split(b"\ndata: ", 1)[1])["id"] for e in self.live.hub._buffer
            }
            return wanted <= seen

        await wait_until(all_read, timeout=20)


@pytest.fixture
async def live_console(
    console_factory: Factory,
) -> AsyncIterator[Callable[..., Awaitable[LiveConsole]]]:
    started: list[tuple[uvicorn.Server, asyncio.Task[None], LiveConsole]] = []

    async def start(**overrides: Any) -> LiveConsole:
        console = await console_factory(
            {"router": httpx.ASGITransport(app=stand_in_router())}, **overrides
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            console.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))

        async def serving() -> bool:
            return server.started

        await wait_until(serving, timeout=10)
        base_url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30.0))
        live = LiveConsole(console, base_url, client)
        started.append((server, task, live))
        return live

    yield start
    for server, task, live in started:
        live.live.hub.end_all()
        await live.client.aclose()
        server.should_exit = True
        await task


def now() -> datetime:
    return datetime.now(UTC)


def offer(agent_id: str) -> NotificationCreated:
    return NotificationCreated(
        notification_id=uuid.uuid4(),
        recipient_id=agent_id,
        kind="new_offer",
        ticket_id=uuid.uuid4(),
        text="A ticket is offered to you",
        data={"offer_id": str(uuid.uuid4())},
        created_at=now(),
    )


def warning(ticket_id: uuid.UUID | None = None) -> SlaWarning:
    return SlaWarning(
        ticket_id=ticket_id or uuid.uuid4(),
        metric="first_response",
        policy_id="p",
        policy_version=1,
        deadline=now(),
        share_elapsed=0.8,
        at=now(),
    )


async def test_an_agent_gets_their_own_offer_and_never_another_agents(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    await live.user("amy", "agent")
    await live.user("bob", "agent")
    async with live.stream("amy") as amy, live.stream("bob") as bob:
        (bobs,) = await live.publish(offer("bob"))
        got = await bob.next_event()
        assert got.event == "notification.created"
        assert got.data["id"] == bobs
        assert got.data["payload"]["recipient_id"] == "bob"
        (amys,) = await live.publish(offer("amy"))
        got = await amy.next_event()
        # Bob's offer was fanned out before Amy's was published: had it reached Amy, it would
        # be first here.
        assert got.data["id"] == amys
        assert got.data["payload"]["kind"] == "new_offer"
        assert got.data["type"] == "notification.created"
        assert got.id is not None
        assert got.id.startswith(live.live.hub.epoch + "-")


async def test_a_supervisor_gets_sla_events_and_an_agent_does_not(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    await live.user("sam", "supervisor")
    await live.user("amy", "agent")
    async with live.stream("sam") as sam, live.stream("amy") as amy:
        sla_warning = warning()
        (warned,) = await live.publish(sla_warning)
        got = await sam.next_event()
        assert got.event == "sla.warning"
        assert got.data["id"] == warned
        assert got.data["payload"]["ticket_id"] == str(sla_warning.ticket_id)
        (own,) = await live.publish(
            AgentStatusChanged(
                agent_id="amy",
                from_status="available",
                to_status="away",
                actor="agent:amy",
                at=now(),
            )
        )
        got = await amy.next_event()
        assert got.data["id"] == own  # not the SLA warning, published first


async def test_an_agent_gets_the_tickets_routed_to_a_queue_they_serve(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    await live.user("cat", "agent")  # serves billing (the stand-in router says)
    await live.user("amy", "agent")  # serves general only
    routed = TicketRouted(
        ticket_id=uuid.uuid4(),
        queue_id="billing",
        priority="normal",
        category="billing",
        channel="email",
        at=now(),
    )
    async with live.stream("cat") as cat, live.stream("amy") as amy:
        (billing,) = await live.publish(routed)
        got = await cat.next_event()
        assert got.data["id"] == billing
        (own,) = await live.publish(offer("amy"))
        assert (await amy.next_event()).data["id"] == own


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    await live.user("sam", "supervisor")
    async with live.stream("sam") as sam:
        (first,) = await live.publish(warning())
        got = await sam.next_event()
        assert got.data["id"] == first
        last_event_id = got.id
    ticket = uuid.uuid4()  # one ticket's events: one partition, in order
    missed = await live.publish(warning(ticket), warning(ticket), offer("someone-else"))
    await live.buffered(missed)
    async with live.stream("sam", last_event_id) as again:
        opening = await again.next()
        assert opening is not None
        replayed = []
        while True:
            frame = await again.next()
            assert frame is not None
            if frame.event is None:  # the cursor after the catch-up
                break
            replayed.append(frame.data["id"])
        assert replayed == missed[:2]  # the other user's notification is not sam's
        assert frame.id == str(live.live.hub.cursor())


async def test_a_gap_older_than_the_buffer_or_from_another_replica_says_reload(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console(live_buffer_size=10)
    await live.user("sam", "supervisor")
    epoch = live.live.hub.epoch
    ids = await live.publish(*(warning() for _ in range(12)))
    await live.buffered(ids[-10:])
    for stale in (f"{epoch}-1", "another-replica-5", "made up"):
        async with live.stream("sam", stale) as stream:
            frame = await stream.next()
            assert frame is not None
            assert frame.event == "reload", stale
            assert frame.id == str(live.live.hub.cursor())
    async with live.stream("sam", f"{epoch}-3") as stream:  # 3..12 are left: caught up
        frame = await stream.next()
        assert frame is not None
        assert frame.event is None


async def test_the_console_is_ready_once_the_live_reader_is_positioned(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    ready = await live.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["live"] is True


async def test_live_without_a_session_is_401(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    answer = await live.client.get("/live", headers={"Accept": "text/event-stream"})
    assert answer.status_code == 401
    assert "event-stream" not in answer.headers["content-type"]


async def test_the_stream_ends_when_the_session_expires(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console(live_recheck_s=0.3)
    await live.user("amy", "agent")
    async with live.stream("amy") as amy:
        conn = await asyncpg.connect(
            asyncpg_dsn(live.console.settings.database_url.get_secret_value())
        )
        try:
            await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
        finally:
            await conn.close()
        while (frame := await amy.next(timeout=10)) is not None:
            assert frame.event is None
    assert live.live.hub.streams == 0
    assert live.live.hub.closed.get("signed_out") == 1


async def test_a_quiet_stream_gets_heartbeats_carrying_the_latest_cursor(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console(live_heartbeat_s=0.2)
    await live.user("amy", "agent")
    async with live.stream("amy") as amy:
        ids = await live.publish(warning())  # not amy's: her cursor still moves on
        await live.buffered(ids)
        while True:
            frame = await amy.next()
            assert frame is not None
            if "ping" in frame.comments and frame.id == str(live.live.hub.cursor()):
                break


async def test_stopping_the_replica_ends_open_streams_at_once(
    live_console: Callable[..., Awaitable[LiveConsole]],
) -> None:
    live = await live_console()
    await live.user("sam", "supervisor")
    async with live.stream("sam") as sam:
        assert live.live.hub.streams == 1
        await live.live.stop()
        while (frame := await sam.next(timeout=5)) is not None:
            assert frame.event is None
    assert live.live.hub.streams == 0
    refused = await live.client.get(
        "/live",
        headers={"Accept": "text/event-stream", "Cookie": f"cc_session={live.sessions['sam']}"},
    )
    assert refused.status_code == 503

    async def not_ready() -> bool:  # readiness caches a pass for 2 s
        return (await live.client.get("/readyz")).status_code == 503

    await wait_until(not_ready, timeout=10)
