"""Ticket clocks driven by router.tickets, seen through the SLA API: pauses, re-matching,
policy versions, deactivation, the at-risk list and attainment."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from ccshared.events.payloads import (
    TicketContactAdded,
    TicketOpened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    TicketStatusChanged,
)
from tests.helpers import wait_until
from tests.integration.sla.conftest import (
    CATEGORY,
    Router,
    Sla,
    SlaEvents,
    fast_policy,
    kinds,
    now,
)

HOUR = 3600.0


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


async def sla_of(sla: Sla, ticket_id: uuid.UUID) -> dict[str, Any]:
    response = await sla.client.get(f"/v1/tickets/{ticket_id}/sla")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def metric(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in body["metrics"] if m["metric"] == name)


async def create_policy(sla: Sla, body: dict[str, Any]) -> dict[str, Any]:
    response = await sla.client.post("/v1/policies", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_pending_customer_pauses_resolution_and_resuming_moves_its_deadline(
    sla: Sla, router: Router
) -> None:
    await create_policy(sla, fast_policy(targets={"resolution": 10 * HOUR}, escalation=[]))
    t0 = now() - timedelta(minutes=30)
    ticket = opened(t0)
    pause = TicketStatusChanged(
        ticket_id=ticket.ticket_id,
        from_status="in_progress",
        to_status="pending_customer",
        actor="agent:a1",
        at=t0 + timedelta(minutes=10),
    )
    await router.publish(ticket, pause)
    await wait_until(lambda: _state(sla, ticket.ticket_id, "resolution", "paused"), timeout=30)
    paused = metric(await sla_of(sla, ticket.ticket_id), "resolution")
    assert paused["deadline"] is None
    assert paused["consumed_s"] == 600
    assert (
        await sla.count("SELECT count(*) FROM sla_timers WHERE ticket_id = $1", ticket.ticket_id)
        == 0
    )  # a paused clock has nothing to fire

    resume = TicketStatusChanged(
        ticket_id=ticket.ticket_id,
        from_status="pending_customer",
        to_status="in_progress",
        actor="customer",
        at=t0 + timedelta(minutes=25),
    )
    await router.publish(resume)
    await wait_until(lambda: _state(sla, ticket.ticket_id, "resolution", "running"), timeout=30)
    resolution = metric(await sla_of(sla, ticket.ticket_id), "resolution")
    # 10 min consumed before the pause; the 15 min pause does not count.
    expected = t0 + timedelta(minutes=25) + timedelta(hours=10) - timedelta(minutes=10)
    assert datetime.fromisoformat(resolution["deadline"]) == expected
    assert [e["kind"] for e in resolution["timeline"]] == ["started", "paused", "resumed"]
    assert 600 + 300 - 5 < resolution["consumed_s"] < 600 + 300 + 60
    due = await sla.db.fetchval(
        "SELECT due_at FROM sla_timers WHERE ticket_id = $1 AND kind = 'breach'",
        ticket.ticket_id,
    )
    assert due == expected


async def _state(sla: Sla, ticket_id: uuid.UUID, name: str, state: str) -> bool:
    response = await sla.client.get(f"/v1/tickets/{ticket_id}/sla")
    return response.status_code == 200 and metric(response.json(), name)["state"] == state


async def test_next_response_starts_on_an_unanswered_customer_message_and_reply_meets_it(
    sla: Sla, router: Router, sla_events: SlaEvents
) -> None:
    await create_policy(
        sla,
        fast_policy(
            targets={"first_response": HOUR, "next_response": HOUR, "resolution": 8 * HOUR},
            escalation=[],
        ),
    )
    t0 = now() - timedelta(minutes=5)
    ticket = opened(t0)
    tid = ticket.ticket_id
    await router.publish(
        ticket,
        # Before any reply the first response covers this message: no next-response clock.
        TicketContactAdded(
            ticket_id=tid,
            customer_id=ticket.customer_id,
            contact_id=uuid.uuid4(),
            channel="email",
            received_at=t0 + timedelta(minutes=1),
        ),
        TicketReplied(
            ticket_id=tid,
            agent_id="a1",
            channel="email",
            first_response=True,
            at=t0 + timedelta(minutes=2),
        ),
        TicketContactAdded(
            ticket_id=tid,
            customer_id=ticket.customer_id,
            contact_id=uuid.uuid4(),
            channel="chat",
            received_at=t0 + timedelta(minutes=3),
        ),
        TicketReplied(
            ticket_id=tid,
            agent_id="a2",
            channel="phone",
            first_response=False,
            at=t0 + timedelta(minutes=4),
        ),
    )
    events = await sla_events.wait_for(tid, lambda ev: kinds(ev).count("sla.met") == 2)
    assert [e["metric"] for e in events] == ["first_response", "next_response"]
    body = await sla_of(sla, tid)
    nxt = metric(body, "next_response")
    assert nxt["status"] == "met"
    assert nxt["cycle"] == 1
    assert [e["kind"] for e in nxt["timeline"]] == ["started", "fulfilled"]
    assert datetime.fromisoformat(nxt["timeline"][0]["at"]) == t0 + timedelta(minutes=3)

    day = t0.date().isoformat()  # the day the ticket's clocks ran (not "today": midnight)
    attainment = await sla.client.get(
        "/v1/attainment",
        params={
            "from": f"{day}T00:00:00Z",
            "to": (now() + timedelta(days=1)).isoformat(),
            "group_by": "queue",
        },
    )
    assert attainment.status_code == 200, attainment.text
    rows = {(r["group"], r["metric"]): r for r in attainment.json()["rows"]}
    assert rows[("billing-cn", "first_response")]["met"] == 1
    assert rows[("billing-cn", "next_response")]["attainment"] == 1.0


async def test_routing_to_another_priority_rematches_the_policy(sla: Sla, router: Router) -> None:
    await create_policy(
        sla,
        fast_policy(
            "vip",
            conditions={"category": [CATEGORY], "priority": ["urgent"]},
            targets={"first_response": 600, "resolution": 2 * HOUR},
            escalation=[],
        ),
    )
    t0 = now()
    ticket = opened(t0, priority="low")
    routed = TicketRouted(
        ticket_id=ticket.ticket_id,
        queue_id="vip",
        priority="urgent",
        category=CATEGORY,
        channel="email",
        reason="priority raised",
        at=t0 + timedelta(minutes=1),
    )
    await router.publish(ticket)
    await wait_until(lambda: sla.tracked(ticket.ticket_id), timeout=30)
    assert (await sla_of(sla, ticket.ticket_id))["policy_id"] == "default-low"

    await router.publish(routed)

    async def rematched() -> bool:
        return (await sla_of(sla, ticket.ticket_id))["policy_id"] == "vip"

    await wait_until(rematched, timeout=30)
    body = await sla_of(sla, ticket.ticket_id)
    first = metric(body, "first_response")
    assert first["timeline"][-1]["kind"] == "retargeted"
    # One minute consumed under the old policy; nine left of the new ten.
    assert datetime.fromisoformat(first["deadline"]) == t0 + timedelta(minutes=10)
    assert body["queue_id"] == "vip"
    assert body["priority"] == "urgent"


async def test_policy_change_keeps_open_tickets_on_their_version_unless_recomputed(
    sla: Sla, router: Router
) -> None:
    await create_policy(sla, fast_policy(targets={"resolution": HOUR}, escalation=[]))
    t0 = now()
    early = opened(t0)
    await router.publish(early)
    await wait_until(lambda: sla.tracked(early.ticket_id), timeout=30)

    v2 = fast_policy(targets={"resolution": 2 * HOUR}, escalation=[])
    del v2["id"]
    changed = await sla.client.put("/v1/policies/fast", json=v2)
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    late = opened(t0)
    await router.publish(late)
    await wait_until(lambda: sla.tracked(late.ticket_id), timeout=30)
    assert (await sla_of(sla, early.ticket_id))["policy_version"] == 1  # kept
    assert (await sla_of(sla, late.ticket_id))["policy_version"] == 2

    v3 = fast_policy(targets={"resolution": 3 * HOUR}, escalation=[])
    del v3["id"]
    recomputed = await sla.client.put(
        "/v1/policies/fast", params={"apply_to_open": "recompute"}, json=v3
    )
    assert recomputed.status_code == 200, recomputed.text
    assert recomputed.json()["version"] == 3
    assert recomputed.json()["recomputed_open_tickets"] == 2
    for ticket in (early, late):
        body = await sla_of(sla, ticket.ticket_id)
        assert body["policy_version"] == 3
        resolution = metric(body, "resolution")
        assert datetime.fromisoformat(resolution["deadline"]) == t0 + timedelta(hours=3)
        due = await sla.db.fetchval(
            "SELECT due_at FROM sla_timers WHERE ticket_id = $1 AND kind = 'breach'",
            ticket.ticket_id,
        )
        assert due == t0 + timedelta(hours=3)
    versions = (await sla.client.get("/v1/policies/fast/versions")).json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    v1 = (await sla.client.get("/v1/policies/fast/versions/1")).json()
    assert v1["targets"] == {"resolution": "PT1H"}


async def test_deactivated_policy_stops_escalating_and_matches_no_new_ticket(
    sla: Sla, router: Router
) -> None:
    await create_policy(sla, fast_policy(targets={"resolution": HOUR}))
    ticket = opened(now())
    await router.publish(ticket)
    await wait_until(lambda: sla.tracked(ticket.ticket_id), timeout=30)
    escalations = "SELECT count(*) FROM sla_timers WHERE ticket_id = $1 AND kind = 'escalation'"
    assert await sla.count(escalations, ticket.ticket_id) == 2

    response = await sla.client.post("/v1/policies/fast/deactivate")
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert await sla.count(escalations, ticket.ticket_id) == 0
    assert (
        await sla.count("SELECT count(*) FROM sla_timers WHERE ticket_id = $1", ticket.ticket_id)
        == 2
    )  # its warning and breach still count

    later = opened(now())
    await router.publish(later)
    await wait_until(lambda: sla.tracked(later.ticket_id), timeout=30)
    assert (await sla_of(sla, later.ticket_id))["policy_id"] == "default-normal"


async def test_at_risk_lists_running_clocks_with_the_least_time_left_first(
    sla: Sla, router: Router
) -> None:
    await create_policy(sla, fast_policy(targets={"resolution": HOUR}, escalation=[]))
    t0 = now()
    tickets = [opened(t0 - timedelta(minutes=m)) for m in (5, 40, 20)]
    resolved = opened(t0 - timedelta(minutes=50))
    await router.publish(
        *tickets,
        resolved,
        TicketResolved(
            ticket_id=resolved.ticket_id,
            customer_id=resolved.customer_id,
            agent_id="a1",
            owner_agent_id="a1",
            channel="email",
            queue_id="billing-cn",
            category=CATEGORY,
            priority="normal",
            resolution_code="solved",
            first_contact_resolution=True,
            opened_at=resolved.opened_at,
            resolved_at=t0,
        ),
    )

    async def listed() -> list[Any]:
        items = (await sla.client.get("/v1/at-risk", params={"limit": 2})).json()["items"]
        return items if len(items) == 2 else []

    await wait_until(lambda: _all_tracked(sla, [t.ticket_id for t in tickets]), timeout=30)
    await wait_until(lambda: _status(sla, resolved.ticket_id, "resolved"), timeout=30)
    items = await listed()
    assert [i["ticket_id"] for i in items] == [str(tickets[1].ticket_id), str(tickets[2].ticket_id)]
    assert items[0]["remaining_s"] < items[1]["remaining_s"]
    assert 19 * 60 < items[0]["remaining_s"] <= 20 * 60


async def _status(sla: Sla, ticket_id: uuid.UUID, status: str) -> bool:
    response = await sla.client.get(f"/v1/tickets/{ticket_id}/sla")
    return response.status_code == 200 and response.json()["status"] == status


async def _all_tracked(sla: Sla, ids: list[uuid.UUID]) -> bool:
    return all([await sla.tracked(i) for i in ids])
