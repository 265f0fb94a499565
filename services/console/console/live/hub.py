"""The replica's live events: a bounded buffer of the recent ones, each with its stream id, and
their fan-out to the connected streams, each through a bounded queue of its own.

Every event is encoded once (its SSE frame) and its audience worked out once
(console.domain.live) when it arrives; fanning it out to 500 streams is then a few dictionary
look-ups and one `put_nowait` per stream that may see it. A stream whose queue is full (a slow
browser, a stalled network) is closed rather than allowed to hold the others back: the browser
reconnects with Last-Event-ID and catches up from the buffer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from console.domain.live import (
    Audience,
    Cursor,
    TicketFacts,
    Viewer,
    audience,
    facts_after,
    replay_range,
    sees,
    ticket_of,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    seq: int
    event_type: str
    audience: Audience
    frame: bytes  # "id: ...\nevent: ...\ndata: ...\n\n", the same bytes for every stream


# Why a stream ended (logged, and counted by `Hub.closed`).
OVERFLOW, STOPPING, GONE, SIGNED_OUT = "overflow", "stopping", "gone", "signed_out"


@dataclass(eq=False)
class Subscriber:
    """One connected stream: who it is for and the queue of its events (None: it must end)."""

    viewer: Viewer
    queue: asyncio.Queue[LiveEvent | None]
    ended: str | None = None
    indexed: tuple[str, ...] = field(default_factory=tuple)  # the queues it is indexed under

    def end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
            # A full queue: its stream is not waiting on it, and sees `ended` when it looks.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)


def new_epoch() -> str:
    """This replica's run, in every stream id: a browser's Last-Event-ID from another replica
    or an earlier run is recognised as such (its numbers mean nothing here)."""
    return f"{int(time.time() * 1000):x}{os.urandom(2).hex()}"


class Hub:
    def __init__(
        self, *, buffer_size: int, queue_size: int, tracked_tickets: int = 100_000
    ) -> None:
        self.epoch = new_epoch()
        self.queue_size = queue_size
        self._buffer: deque[LiveEvent] = deque(maxlen=buffer_size)
        self._seq = 0
        self._tickets: OrderedDict[str, TicketFacts] = OrderedDict()
        self._tracked = tracked_tickets
        # The streams by what an audience names: supervisors, subjects, agents, queues.
        self._supervisors: set[Subscriber] = set()
        self._by_subject: dict[str, set[Subscriber]] = {}
        self._by_agent: dict[str, set[Subscriber]] = {}
        self._by_queue: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self.stopping = False
        self.closed: dict[str, int] = {}
        self.published = 0

    # -- events in -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._seq

    def cursor(self) -> Cursor:
        return Cursor(self.epoch, self._seq)

    def publish(
        self, event_type: str, event_id: str, occurred_at: str, payload: dict[str, Any]
    ) -> LiveEvent | None:
        """Take an event read from Kafka: learn what it says of its ticket, buffer it and fan
        it out. None when no rule lets anyone see it (it is not buffered)."""
        ticket = ticket_of(payload) if event_type.startswith("ticket.") else None
        before = self._tickets.get(ticket) if ticket else None
        who = audience(event_type, payload, before)
        if ticket is not None:
            self._remember(ticket, facts_after(before or TicketFacts(), event_type, payload))
        if who.empty:
            return None
        self._seq += 1
        data = orjson.dumps(
            {"type": event_type, "id": event_id, "occurred_at": occurred_at, "payload": payload}
        )
        frame = b"id: %s-%d\nevent: %s\ndata: %s\n\n" % (
            self.epoch.encode(),
            self._seq,
            event_type.encode(),
            data,
        )
        event = LiveEvent(self._seq, event_type, who, frame)
        self._buffer.append(event)
        self.published += 1
        self._fan_out(event)
        return event

    def _remember(self, ticket: str, facts: TicketFacts) -> None:
        self._tickets[ticket] = facts
        self._tickets.move_to_end(ticket)
        if len(self._tickets) > self._tracked:
            self._tickets.popitem(last=False)

    def _candidates(self, who: Audience) -> set[Subscriber]:
        found: set[Subscriber] = set(self._supervisors) if who.supervisors else set()
        for index, keys in (
            (self._by_subject, who.subjects),
            (self._by_agent, who.agents),
            (self._by_queue, who.queues),
        ):
            for key in keys:
                subscribers = index.get(key)
                if subscribers:
                    found |= subscribers
        return found

    def _fan_out(self, event: LiveEvent) -> None:
        for subscriber in self._candidates(event.audience):
            if subscriber.ended is None and sees(subscriber.viewer, event.audience):
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    self.unsubscribe(subscriber, OVERFLOW)

    # -- streams ---------------------------------------------------------------------------

    def subscribe(
        self, viewer: Viewer, after: Cursor | None = None
    ) -> tuple[Subscriber, list[LiveEvent] | None]:
        """A new stream, and the buffered events it may see after `after` (its
        Last-Event-ID): [] with no cursor, None when it cannot catch up (reload). Taken
        together, so no event falls between the replay and the live ones."""
        subscriber = Subscriber(viewer, asyncio.Queue(self.queue_size))
        replay: list[LiveEvent] | None = []
        if after is not None:
            replay = self.replay(viewer, after)
        if self.stopping:
            subscriber.end(STOPPING)
            return subscriber, replay
        self._all.add(subscriber)
        self._index(subscriber)
        return subscriber, replay

    def replay(self, viewer: Viewer, after: Cursor) -> list[LiveEvent] | None:
        first = self._buffer[0].seq if self._buffer else self._seq + 1
        missed = replay_range(after, self.epoch, first, self._seq)
        if missed is None:
            return None
        start = missed[0] - first
        return [e for e in islice(self._buffer, start, None) if sees(viewer, e.audience)]

    def change_viewer(self, subscriber: Subscriber, viewer: Viewer) -> None:
        """The stream's user changed (an agent's queues, refreshed)."""
        if subscriber.ended is not None:
            return
        self._unindex(subscriber)
        subscriber.viewer = viewer
        self._index(subscriber)

    def unsubscribe(self, subscriber: Subscriber, why: str) -> None:
        if subscriber in self._all:
            self._all.discard(subscriber)
            self._unindex(subscriber)
            self.closed[why] = self.closed.get(why, 0) + 1
            if why == OVERFLOW:
                log.info("live stream of %s too slow: closed", subscriber.viewer.user_id)
        subscriber.end(why)

    def end_all(self, why: str = STOPPING) -> None:
        """End every stream (the replica stops): their responses finish at once, so a graceful
        server shutdown is not held up by them."""
        self.stopping = True
        for subscriber in list(self._all):
            self.unsubscribe(subscriber, why)

    @property
    def streams(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(list(self._all))

    def _index(self, subscriber: Subscriber) -> None:
        viewer = subscriber.viewer
        if viewer.supervisor:
            self._supervisors.add(subscriber)
        self._by_subject.setdefault(viewer.subject, set()).add(subscriber)
        if viewer.agent_id is not None:
            self._by_agent.setdefault(viewer.agent_id, set()).add(subscriber)
        subscriber.indexed = tuple(viewer.queues)
        for queue in subscriber.indexed:
            self._by_queue.setdefault(queue, set()).add(subscriber)

    def _unindex(self, subscriber: Subscriber) -> None:
        viewer = subscriber.viewer
        self._supervisors.discard(subscriber)
        _discard(self._by_subject, viewer.subject, subscriber)
        if viewer.agent_id is not None:
            _discard(self._by_agent, viewer.agent_id, subscriber)
        for queue in subscriber.indexed:
            _discard(self._by_queue, queue, subscriber)
        subscriber.indexed = ()


def _discard(index: dict[str, set[Subscriber]], key: str, subscriber: Subscriber) -> None:
    found = index.get(key)
    if found is not None:
        found.discard(subscriber)
        if not found:
            del index[key]
