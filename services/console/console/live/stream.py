"""One browser's server-sent-events stream: its catch-up, its events as they come, a heartbeat,
and its end (the browser went away, the session ended, the stream was too slow, the replica
stops).

A plain ASGI response rather than Starlette's StreamingResponse: it writes each batch of frames
as soon as it has it, watches for the browser leaving while nothing is sent, and ends the
moment the hub says so. Every frame the stream writes carries the replica's cursor in `id:`
(events their own, heartbeats the hub's latest), so a browser's Last-Event-ID stays recent
even when it is shown few events, and a reconnect catches up from the buffer."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from console.domain.live import AGENT_STATUS, Viewer, parse_cursor
from console.live.hub import GONE, SIGNED_OUT, Hub, LiveEvent

log = logging.getLogger(__name__)

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx and the ingress controllers built on it
]
_BATCH = 200  # frames written at once, at most
_SEND_TIMEOUT_S = 30.0  # a browser that takes no bytes for this long is gone


@dataclass
class StreamTimers:
    heartbeat_s: float
    recheck_s: float  # the session (and an agent's queues) checked again this often
    retry_ms: int


class EventStream(Response):
    """The ASGI response of GET /live. `signed_in`: whether the session still holds;
    `viewer_now`: the user's viewer fetched again (an agent's queues)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        viewer: Viewer,
        last_event_id: str | None,
        timers: StreamTimers,
        signed_in: Callable[[], Awaitable[bool]],
        viewer_now: Callable[[Viewer], Awaitable[Viewer]],
    ) -> None:
        super().__init__(status_code=200)
        self.hub = hub
        self.timers = timers
        self.signed_in = signed_in
        self.viewer_now = viewer_now
        cursor = parse_cursor(last_event_id)
        self.subscriber, replay = hub.subscribe(viewer, cursor)
        # A Last-Event-ID that is not a cursor of this replica's buffer: reload.
        self.reload = replay is None or (last_event_id is not None and cursor is None)
        self.replay = replay or []
        self.start_cursor = str(hub.cursor())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        watcher = asyncio.create_task(self._watch(receive), name="live-disconnect")
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await self._send(send, self._opening())
            await self._serve(send)
            await self._send(send, b"", more=False)
        except (OSError, TimeoutError):  # the browser took nothing for too long: drop it
            log.info("live stream of %s not taking its events: dropped", subscriber.viewer.user_id)
        finally:
            watcher.cancel()
            self.hub.unsubscribe(subscriber, subscriber.ended or GONE)

    def _opening(self) -> bytes:
        head = b"retry: %d\n" % self.timers.retry_ms
        cursor = self.start_cursor.encode()
        if self.reload:
            return head + b"id: %s\nevent: reload\ndata: {}\n\n" % cursor
        frames = b"".join(e.frame for e in self.replay)
        return head + b"\n" + frames + b"id: %s\n\n" % cursor

    async def _serve(self, send: Send) -> None:
        subscriber, timers = self.subscriber, self.timers
        queue = subscriber.queue
        loop = asyncio.get_running_loop()
        # Spread the streams' session checks over the interval.
        next_check = loop.time() + timers.recheck_s * random.uniform(0.5, 1.0)
        next_beat = loop.time() + timers.heartbeat_s
        while subscriber.ended is None:
            now = loop.time()
            if now >= next_check:
                next_check = now + timers.recheck_s
                if not await self.signed_in():
                    self.hub.unsubscribe(subscriber, SIGNED_OUT)
                    return
                await self._refresh_viewer()
                continue
            try:
                async with asyncio.timeout(min(next_beat, next_check) - now):
                    first = await queue.get()
            except TimeoutError:
                if loop.time() >= next_beat and subscriber.ended is None:
                    await self._send(send, b": ping\nid: %s\n\n" % str(self.hub.cursor()).encode())
                    next_beat = loop.time() + timers.heartbeat_s
                continue
            if first is None or subscriber.ended is not None:
                return
            events = [first]
            while len(events) < _BATCH and not queue.empty():
                item = queue.get_nowait()
                if item is None:
                    break
                events.append(item)
            await self._send(send, b"".join(e.frame for e in events))
            next_beat = loop.time() + timers.heartbeat_s
            if self._own_status_changed(events):
                next_check = min(next_check, loop.time())  # their queues may have changed too

    def _own_status_changed(self, events: list[LiveEvent]) -> bool:
        viewer = self.subscriber.viewer
        return viewer.agent_id is not None and any(
            e.event_type == AGENT_STATUS and viewer.agent_id in e.audience.agents for e in events
        )

    async def _refresh_viewer(self) -> None:
        viewer = await self.viewer_now(self.subscriber.viewer)
        if viewer != self.subscriber.viewer:
            self.hub.change_viewer(self.subscriber, viewer)

    async def _send(self, send: Send, body: bytes, *, more: bool = True) -> None:
        async with asyncio.timeout(_SEND_TIMEOUT_S):
            await send({"type": "http.response.body", "body": body, "more_body": more})

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.hub.unsubscribe(self.subscriber, GONE)
                return
