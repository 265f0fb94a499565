"""The live hub (console.live.hub): buffer, fan-out through bounded queues, replay."""

from __future__ import annotations

import orjson

from console.domain.live import Cursor, Viewer
from console.live.hub import OVERFLOW, STOPPING, Hub

SUP = Viewer(user_id="sam", subject="sam", supervisor=True)
AMY = Viewer(user_id="amy", subject="amy", supervisor=False, agent_id="amy")
BOB = Viewer(user_id="bob", subject="bob", supervisor=False, agent_id="bob")
AT = "2026-12-03T15:00:00+00:00"


def status(hub: Hub, agent: str) -> None:
    hub.publish("agent.status_changed", f"ev-{hub.last_seq}", AT, {"agent_id": agent})


async def test_an_event_is_framed_once_with_the_replica_cursor_as_its_id() -> None:
    hub = Hub(buffer_size=10, queue_size=10)
    sub, _ = hub.subscribe(AMY)
    status(hub, "amy")
    event = sub.queue.get_nowait()
    assert event is not None
    lines = event.frame.decode().split("\n")
    assert lines[0] == f"id: {hub.epoch}-1"
    assert lines[1] == "event: agent.status_changed"
    data = orjson.loads(lines[2].removeprefix("data: "))
    assert data == {
        "type": "agent.status_changed",
        "id": "ev-0",
        "occurred_at": AT,
        "payload": {"agent_id": "amy"},
    }
    assert event.frame.endswith(b"\n\n")


async def test_each_stream_gets_only_what_its_user_may_see() -> None:
    hub = Hub(buffer_size=10, queue_size=10)
    amy, _ = hub.subscribe(AMY)
    bob, _ = hub.subscribe(BOB)
    sup, _ = hub.subscribe(SUP)
    status(hub, "amy")
    assert amy.queue.qsize() == 1
    assert bob.queue.qsize() == 0
    assert sup.queue.qsize() == 1


async def test_events_nobody_may_see_are_not_buffered() -> None:
    hub = Hub(buffer_size=10, queue_size=10)
    assert hub.publish("survey.answered", "e", AT, {"ticket_id": "t"}) is None
    assert hub.last_seq == 0


async def test_a_stream_too_slow_is_closed_and_the_others_keep_getting_events() -> None:
    hub = Hub(buffer_size=100, queue_size=3)
    slow, _ = hub.subscribe(SUP)
    fast, _ = hub.subscribe(SUP)
    for _ in range(5):
        status(hub, "amy")
        while not fast.queue.empty():
            fast.queue.get_nowait()
    assert slow.ended == OVERFLOW
    assert fast.ended is None
    assert hub.streams == 1
    assert hub.closed == {OVERFLOW: 1}


async def test_a_reconnect_gets_the_buffered_events_after_its_cursor_that_it_may_see() -> None:
    hub = Hub(buffer_size=100, queue_size=10)
    for agent in ("amy", "bob", "amy", "bob"):
        status(hub, agent)
    _, replay = hub.subscribe(AMY, Cursor(hub.epoch, 1))
    assert replay is not None
    assert [e.seq for e in replay] == [3]
    _, replay = hub.subscribe(SUP, Cursor(hub.epoch, 1))
    assert replay is not None
    assert [e.seq for e in replay] == [2, 3, 4]


async def test_a_cursor_older_than_the_buffer_or_of_another_run_gets_no_replay() -> None:
    hub = Hub(buffer_size=3, queue_size=10)
    for _ in range(6):
        status(hub, "amy")
    assert hub.subscribe(AMY, Cursor(hub.epoch, 2))[1] is None  # 4..6 are left
    assert hub.subscribe(AMY, Cursor(hub.epoch, 3))[1] is not None
    assert hub.subscribe(AMY, Cursor("another", 5))[1] is None


async def test_an_agents_new_queues_take_effect_for_the_next_event() -> None:
    hub = Hub(buffer_size=10, queue_size=10)
    sub, _ = hub.subscribe(AMY)
    routed = {"ticket_id": "t1", "queue_id": "billing"}
    hub.publish("ticket.routed", "e1", AT, routed)
    assert sub.queue.empty()
    hub.change_viewer(sub, Viewer("amy", "amy", False, "amy", frozenset({"billing"})))
    hub.publish("ticket.routed", "e2", AT, {**routed, "ticket_id": "t2"})
    assert sub.queue.qsize() == 1


async def test_stopping_ends_every_stream_and_refuses_new_ones() -> None:
    hub = Hub(buffer_size=10, queue_size=10)
    sub, _ = hub.subscribe(SUP)
    hub.end_all()
    assert sub.ended == STOPPING
    assert sub.queue.get_nowait() is None
    late, _ = hub.subscribe(SUP)
    assert late.ended == STOPPING
    assert hub.streams == 0


async def test_the_live_part_is_not_ready_before_its_reader_is_positioned() -> None:
    from console.live import Live
    from console.settings import ConsoleSettings

    live = Live(ConsoleSettings(kafka_bootstrap="127.0.0.1:1"))  # nothing listens there
    assert not await live.ready()
    live.start()
    try:
        assert not await live.ready()
    finally:
        await live.stop()
    assert not await live.ready()
