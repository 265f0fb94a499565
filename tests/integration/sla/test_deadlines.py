"""Each ticket's next deadline published on sla.events (`sla.deadline_changed`) whenever a clock
starts, is met, pauses or resumes; and clocks that start when the customer wrote."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from ccshared.events.payloads import TicketOpened, TicketReplied, TicketStatusChanged
from tests.integration.sla.conftest import (
    CATEGORY,
    Router,
    Sla,
    SlaEvents,
    deadlines,
    fast_policy,
    kinds,
    now,
)

HOUR = timedelta(hours=1)
SEC = timedelta(seconds=1)


def opened(at: datetime, **overrides: Any) -> TicketOpened:
    fields: dict[str, Any] = {
        "ticket_id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "channel": "email",
        "category": CATEGORY,
        "priority": "normal",
        "queue_id": "billing-cn",
        "opened_at": at,
    }
    return TicketOpened(**(fields | overrides))


def moves(events: list[dict[str, Any]]) -> list[tuple[int, str | None, datetime | None]]:
    return [
        (
            e["version"],
            e["metric"],
            datetime.fromisoformat(e["next_deadline"]) if e["next_deadline"] else None,
        )
        for e in deadlines(events)
    ]


async def test_next_deadline_is_published_when_a_clock_starts_is_met_pauses_and_resumes(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    policy = fast_policy(targets={"first_response": 7200, "resolution": 36000}, escalation=[])
    assert (await sla.client.post("/v1/policies", json=policy)).status_code == 201
    t0 = now() - timedelta(minutes=30)
    ticket = opened(t0, received_at=t0)
    tid = ticket.ticket_id
    await router.publish(ticket)
    events = await sla_events.wait_for(tid, lambda ev: len(deadlines(ev)) == 1, with_deadlines=True)
    assert moves(events) == [(1, "first_response", t0 + 2 * HOUR)]

    reply = TicketReplied(
        ticket_id=tid, agent_id="a1", channel="email", first_response=True, at=t0 + 5 * 60 * SEC
    )
    pause = TicketStatusChanged(
        ticket_id=tid,
        from_status="in_progress",
        to_status="pending_customer",
        actor="agent:a1",
        at=t0 + 10 * 60 * SEC,
    )
    resume = TicketStatusChanged(
        ticket_id=tid,
        from_status="pending_customer",
        to_status="in_progress",
        actor="customer",
        at=t0 + 25 * 60 * SEC,
    )
    await router.publish(reply, pause, resume)
    events = await sla_events.wait_for(tid, lambda ev: len(deadlines(ev)) == 4, with_deadlines=True)
    assert moves(events) == [
        (1, "first_response", t0 + 2 * HOUR),
        (2, "resolution", t0 + 10 * HOUR),  # first response met: resolution is next
        (3, None, None),  # resolution paused: no clock runs
        (4, "resolution", t0 + 25 * 60 * SEC + 10 * HOUR - 10 * 60 * SEC),  # resumed
    ]
    # The met event comes first, its deadline change after it; all keyed by ticket.
    assert [e["type"] for e in events][1:3] == ["sla.met", "sla.deadline_changed"]
    # A change that leaves the next deadline where it is publishes nothing: the pause after
    # it is version 5, with nothing in between.
    unrelated = TicketStatusChanged(
        ticket_id=tid, from_status="in_progress", to_status="assigned", actor="x", at=now()
    )
    await router.publish(unrelated, pause.model_copy(update={"at": now()}))
    events = await sla_events.wait_for(tid, lambda ev: len(deadlines(ev)) >= 5, with_deadlines=True)
    assert [v for v, _, _ in moves(events)] == [1, 2, 3, 4, 5]
    assert moves(events)[4][1:] == (None, None)
    version = "SELECT deadline_version FROM sla_tickets WHERE ticket_id = $1"
    assert await sla.count(version, tid) == 5


async def test_clocks_start_when_the_customer_wrote_not_when_the_ticket_opened(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    """A contact received eight days ago (the router was down) owes its answer since then:
    its first response is long overdue, not fresh."""
    policy = fast_policy(targets={"first_response": 3600, "resolution": 36000}, escalation=[])
    assert (await sla.client.post("/v1/policies", json=policy)).status_code == 201
    wrote = now() - timedelta(days=8)
    ticket = opened(now(), received_at=wrote)
    await router.publish(ticket)

    events = await sla_events.wait_for(
        ticket.ticket_id,
        lambda ev: "sla.breached" in kinds(ev, "first_response"),
        with_deadlines=True,
    )
    breached = next(e for e in events if e["type"] == "sla.breached")
    assert datetime.fromisoformat(breached["deadline"]) == wrote + HOUR
    body = (await sla.client.get(f"/v1/tickets/{ticket.ticket_id}/sla")).json()
    first = next(m for m in body["metrics"] if m["metric"] == "first_response")
    assert datetime.fromisoformat(first["timeline"][0]["at"]) == wrote
    assert moves(events)[0] == (1, "first_response", wrote + HOUR)


async def test_a_received_at_after_the_opening_counts_from_the_opening(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    policy = fast_policy(targets={"first_response": 3600, "resolution": 36000}, escalation=[])
    assert (await sla.client.post("/v1/policies", json=policy)).status_code == 201
    at = now()
    ticket = opened(at, received_at=at + timedelta(minutes=5))  # a channel's skewed clock
    await router.publish(ticket)
    events = await sla_events.wait_for(
        ticket.ticket_id, lambda ev: len(deadlines(ev)) == 1, with_deadlines=True
    )
    assert moves(events) == [(1, "first_response", at + HOUR)]
