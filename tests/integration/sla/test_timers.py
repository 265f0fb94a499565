"""Warnings, breaches and escalation levels fired from the PostgreSQL timer table: in order,
exactly once, across redelivery, restarts and two replicas."""

from __future__ import annotations

import uuid
from typing import Any

from ccshared.events.payloads import TicketOpened, TicketReplied
from tests.helpers import wait_until
from tests.integration.sla.conftest import (
    CATEGORY,
    Router,
    Sla,
    SlaEvents,
    SlaFactory,
    ago,
    fast_policy,
    kinds,
    now,
)

LADDER = ["sla.warning", "sla.breached", "sla.escalated:1", "sla.escalated:2"]


def opened(ticket_id: uuid.UUID | None = None, **overrides: Any) -> TicketOpened:
    fields: dict[str, Any] = {
        "ticket_id": ticket_id or uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "channel": "chat",
        "category": CATEGORY,
        "priority": "normal",
        "queue_id": "billing-cn",
        "opened_at": now(),
    }
    return TicketOpened(**(fields | overrides))


async def test_warning_breach_and_each_escalation_level_fire_once_in_order(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    created = await sla.client.post("/v1/policies", json=fast_policy())
    assert created.status_code == 201, created.text
    ticket = opened()
    await router.publish(ticket)

    events = await sla_events.wait_for(ticket.ticket_id, lambda ev: "sla.escalated:2" in kinds(ev))
    assert kinds(events) == LADDER
    warning, breached, level1, level2 = events
    assert warning["metric"] == breached["metric"] == "first_response"
    assert warning["policy_id"] == "fast"
    assert warning["policy_version"] == 1
    assert warning["share_elapsed"] == 0.5
    assert breached["deadline"] == warning["deadline"]
    assert level1["actions"] == ["notify_supervisor", "raise_priority"]
    assert level1["raise_priority_to"] == "high"  # one step up from normal
    assert level1["escalation_queue_id"] is None
    assert level2["actions"] == ["move_to_escalation_queue", "notify_manager", "raise_priority"]
    assert level2["raise_priority_to"] == "urgent"
    assert level2["escalation_queue_id"] == "escalations"
    # Fired timers left the pending table; only the resolution clock's remain.
    pending = await sla.db.fetch(
        "SELECT metric, kind FROM sla_timers WHERE ticket_id = $1", ticket.ticket_id
    )
    assert {(r["metric"], r["kind"]) for r in pending} == {
        ("resolution", "warning"),
        ("resolution", "breach"),
        ("resolution", "escalation"),
    }
    assert (
        await sla.count("SELECT count(*) FROM fired_timers WHERE ticket_id = $1", ticket.ticket_id)
        == 4
    )


async def test_redelivered_events_have_one_effect(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    policy = fast_policy(targets={"first_response": 60, "resolution": 3600})
    assert (await sla.client.post("/v1/policies", json=policy)).status_code == 201
    ticket = opened()
    reply = TicketReplied(
        ticket_id=ticket.ticket_id, agent_id="a1", channel="chat", first_response=True, at=now()
    )
    [opening] = await router.publish(ticket)
    await router.publish(opening, opened(ticket.ticket_id))  # redelivery; a re-sent opening
    [answer] = await router.publish(reply)
    await router.publish(answer)

    events = await sla_events.wait_for(ticket.ticket_id, lambda ev: "sla.met" in kinds(ev))
    body = (await sla.client.get(f"/v1/tickets/{ticket.ticket_id}/sla")).json()
    first = next(m for m in body["metrics"] if m["metric"] == "first_response")
    assert [e["kind"] for e in first["timeline"]] == ["started", "fulfilled"]
    assert first["status"] == "met"
    assert kinds(events) == ["sla.met"]
    assert await sla.count("SELECT count(*) FROM sla_outcomes WHERE outcome = 'met'") == 1
    # The first-response timers were dropped when it was met.
    assert (
        await sla.count(
            "SELECT count(*) FROM sla_timers WHERE metric = 'first_response' AND ticket_id = $1",
            ticket.ticket_id,
        )
        == 0
    )


async def test_timers_due_while_stopped_fire_once_after_restart(
    sla_factory: SlaFactory, router: Router, sla_events: SlaEvents
) -> None:
    first = await sla_factory.start()
    policy = fast_policy(
        targets={"first_response": 2.0, "resolution": 3600},
        escalation=[
            {"level": 1, "offset": 0.2, "actions": ["notify_supervisor"]},
            {"level": 2, "offset": 0.4, "actions": ["notify_manager"]},
        ],
    )
    assert (await first.client.post("/v1/policies", json=policy)).status_code == 201
    ticket = opened()
    await router.publish(ticket)
    await sla_events.wait_for(ticket.ticket_id, lambda ev: "sla.warning" in kinds(ev))
    await sla_factory.stop(first)  # the breach and both levels fall due while it is down

    second = await sla_factory.start()
    events = await sla_events.wait_for(ticket.ticket_id, lambda ev: "sla.escalated:2" in kinds(ev))
    assert kinds(events) == LADDER
    fired = "SELECT count(*) FROM fired_timers WHERE ticket_id = $1"
    assert await second.count(fired, ticket.ticket_id) == 4


async def test_two_replicas_on_one_database_fire_each_timer_once(
    sla_factory: SlaFactory, router: Router, sla_events: SlaEvents
) -> None:
    one = await sla_factory.start()
    two = await sla_factory.start()  # a second replica on the same database and group
    scanners = [s.app.state.runtime.parts.scanner for s in (one, two)]

    async def split() -> bool:
        owned = [s.owned_shards() for s in scanners]
        return all(owned) and not set(owned[0]) & set(owned[1])  # type: ignore[arg-type]

    await wait_until(split, timeout=30)  # the group gave each replica its own partitions
    owned = [set(s.owned_shards()) for s in scanners]
    assert owned[0] | owned[1] == set(range(6))
    assert (await one.client.post("/v1/policies", json=fast_policy())).status_code == 201
    tickets = [opened() for _ in range(30)]
    await router.publish(*tickets)

    def all_escalated(_: list[Any]) -> bool:
        return all("sla.escalated:2" in kinds(sla_events.of(t.ticket_id)) for t in tickets)

    await sla_events.tail.wait_for(all_escalated, timeout=60)
    for ticket in tickets:
        assert kinds(sla_events.of(ticket.ticket_id)) == LADDER
    ids = [t.ticket_id for t in tickets]
    fired = "SELECT count(*) FROM fired_timers WHERE ticket_id = ANY($1) AND kind <> 'warning'"
    assert await one.count(fired, ids) == 3 * len(tickets)
    assert await one.count(
        "SELECT count(*) FROM fired_timers WHERE ticket_id = ANY($1)", ids
    ) == 4 * len(tickets)
    # Work split by partition: each replica fired the timers of its own tickets.
    assert all(s.stats.fired > 0 for s in scanners)


async def test_reply_after_the_deadline_before_the_breach_fired_still_publishes_the_breach(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    from ccshared.events.payloads import TicketReplied

    created = await sla.client.post("/v1/policies", json=fast_policy())
    assert created.status_code == 201, created.text
    await sla.app.state.runtime.parts.scanner.stop(0)  # no timer fires from here on
    ticket = opened(opened_at=ago(5))  # its 1 s first-response target ran out long ago
    await router.publish(ticket)
    await router.publish(
        TicketReplied(
            ticket_id=ticket.ticket_id,
            agent_id="amy",
            channel="chat",
            first_response=True,
            at=now(),
        )
    )
    events = await sla_events.wait_for(ticket.ticket_id, lambda ev: "sla.breached" in kinds(ev))
    assert kinds(events, "first_response") == ["sla.breached"]
    assert (
        await sla.count(
            "SELECT count(*) FROM fired_timers WHERE ticket_id = $1 AND kind = 'breach'",
            ticket.ticket_id,
        )
        == 1
    )
    assert (
        await sla.count(
            "SELECT count(*) FROM sla_outcomes WHERE ticket_id = $1 AND outcome = 'breached'",
            ticket.ticket_id,
        )
        == 1
    )
