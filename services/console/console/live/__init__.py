"""The console's live stream: the Kafka reader, the hub (buffer and fan-out) and the streams.

`Live` is the part bootstrap starts and stops (`parts.live`). Stopping ends every open stream
at once. Under uvicorn it also ends them when the server is told to stop (SIGTERM, SIGINT):
uvicorn's graceful shutdown waits for open responses before it runs the app's shutdown, and an
event stream never finishes by itself, so without this a replica would wait for its browsers
until killed."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from ccshared.events.catalog import FEEDBACK_EVENTS, ROUTER_TICKETS, SLA_EVENTS
from console.live.hub import STOPPING, Hub
from console.live.reader import LiveReader
from console.settings import ConsoleSettings

log = logging.getLogger(__name__)

LIVE_TOPICS = (ROUTER_TICKETS, SLA_EVENTS, FEEDBACK_EVENTS)
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], Any] | int | None


class Live:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.hub = Hub(
            buffer_size=settings.live_buffer_size,
            queue_size=settings.live_queue_size,
            tracked_tickets=settings.live_tracked_tickets,
        )
        self.reader = LiveReader(
            self.hub,
            bootstrap=settings.kafka_bootstrap,
            topics=[settings.kafka_topic_prefix + t for t in LIVE_TOPICS],
            client_id=f"{settings.client_id}.live",
            security=settings.kafka_security,
            metadata_interval_s=settings.live_metadata_interval_s,
        )
        self._previous: dict[int, Handler] = {}

    def start(self) -> None:
        self.reader.start()
        self._end_streams_on_server_exit()

    async def stop(self) -> None:
        self._restore_signals()
        self.hub.end_all(STOPPING)
        await self.reader.stop()

    async def ready(self) -> bool:
        """Ready once every partition is assigned and positioned at its end."""
        return self.reader.ready and not self.hub.stopping

    def _end_streams_on_server_exit(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            try:
                current = signal.getsignal(sig)
            except ValueError:  # not the main thread: no signals here
                return
            if not _is_uvicorns(current):
                continue

            def chained(number: int, frame: FrameType | None, previous: Any = current) -> None:
                loop.call_soon_threadsafe(self.hub.end_all, STOPPING)
                previous(number, frame)

            signal.signal(sig, chained)
            self._previous[sig] = current

    def _restore_signals(self) -> None:
        for sig, previous in self._previous.items():
            try:
                signal.signal(sig, previous)
            except ValueError:
                log.debug("could not restore the handler of %s", sig)
        self._previous.clear()


def _is_uvicorns(handler: Handler) -> bool:
    owner = getattr(handler, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("uvicorn")
