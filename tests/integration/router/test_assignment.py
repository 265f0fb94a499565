"""Offers, acceptance, capacity, timeouts, overflow, and why this agent."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import text

from tests.helpers import as_agent
from tests.integration.router.conftest import Router, contact, eventually


async def _offer_of(router: Router, agent: str) -> dict:
    async def pending() -> list:
        await router.assigner.tick()
        return await router.offers(agent)

    offers = await eventually(pending)
    return offers[0]


async def test_full_lifecycle_with_first_contact_ownership(router: Router) -> None:
    await router.agent("amy", skills={"complaints": 3})
    await router.agent("bob", skills={"complaints": 3}, status="offline")
    customer = uuid.uuid4()
    ticket_id = await router.receive(contact(customer, channel="phone", text_="我要投诉！"))
    offer = await _offer_of(router, "amy")
    assert offer["ticket_id"] == str(ticket_id)
    accepted = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("amy"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "in_progress"
    assert accepted.json()["owner_agent_id"] == "amy"

    reply = await router.client.post(f"/v1/tickets/{ticket_id}/reply", json={"agent_id": "amy"})
    assert reply.json()["first_response_at"] is not None
    pending = await router.client.post(f"/v1/tickets/{ticket_id}/pending", json={})
    assert pending.json()["status"] == "pending_customer"
    # The customer answers: back in progress, on the same ticket.
    assert await router.receive(contact(customer, channel="phone", text_="好的")) == ticket_id
    assert (await router.ticket(ticket_id))["status"] == "in_progress"

    # Transferred to bob: amy stays the owner.
    await router.client.put("/v1/agents/bob/status", json={"status": "available"})
    moved = await router.client.post(
        f"/v1/tickets/{ticket_id}/transfer", json={"to_agent_id": "bob", "reason": "billing"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["assignee_agent_id"] == "bob"
    assert moved.json()["owner_agent_id"] == "amy"
    await router.client.post(f"/v1/tickets/{ticket_id}/reply", json={"agent_id": "bob"})
    resolved = await router.client.post(
        f"/v1/tickets/{ticket_id}/resolve",
        json={"resolution_code": "replaced", "first_contact_resolution": False},
        headers=as_agent("bob"),
    )
    assert resolved.json()["status"] == "resolved"
    reopened = await router.client.post(f"/v1/tickets/{ticket_id}/reopen", json={"reason": "again"})
    assert reopened.json()["status"] in ("queued", "in_progress")
    closed = await router.client.post(f"/v1/tickets/{ticket_id}/close", json={"reason": "solved"})
    assert closed.json()["status"] == "closed"
    history = [(h["action"], h["to_status"]) for h in (await router.ticket(ticket_id))["history"]]
    assert ("accept", "in_progress") in history
    assert ("resolve", "resolved") in history
    assert history[-1] == ("close", "closed")


async def test_invalid_transitions_are_409_with_a_reason(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4()))
    closed = await router.client.post(f"/v1/tickets/{ticket_id}/close", json={"reason": "spam"})
    assert closed.status_code == 200
    resolve = await router.client.post(
        f"/v1/tickets/{ticket_id}/resolve",
        json={"resolution_code": "x", "first_contact_resolution": True},
    )
    assert resolve.status_code == 409
    assert "closed" in resolve.json()["detail"]
    assert resolve.json()["ticket_status"] == "closed"
    pending = await router.client.post(f"/v1/tickets/{ticket_id}/pending", json={})
    assert pending.status_code == 409
    missing = await router.client.post(f"/v1/tickets/{uuid.uuid4()}/pending", json={})
    assert missing.status_code == 404


async def test_capacity_per_channel_is_never_exceeded(router: Router) -> None:
    await router.agent("cat", capacity={"chat": 2, "phone": 1, "email": 0, "social": 0})
    for _ in range(4):
        await router.receive(contact(uuid.uuid4(), channel="chat", text_="hi"))
    await router.receive(contact(uuid.uuid4(), channel="phone", text_="hello"))
    await router.receive(
        contact(
            uuid.uuid4(),
            channel="email",
            text_="hello",
            thread={"email_message_id": f"<{uuid.uuid4()}@x>"},
        )
    )
    for _ in range(3):
        await router.assigner.tick()
    offers = await router.offers("cat")
    channels = Counter()
    for offer in offers:
        channels[(await router.ticket(uuid.UUID(offer["ticket_id"])))["channel"]] += 1
    assert channels == {"chat": 2, "phone": 1}


async def test_offer_not_accepted_in_time_goes_to_the_next_agent(router: Router) -> None:
    await router.agent("ann")
    await router.agent("ben")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    first = (await router.sql("SELECT agent_id FROM offers WHERE ticket_id = :t", t=ticket_id))[0]
    await router.sql("UPDATE offers SET expires_at = now() - interval '1 second'")
    await router.assigner.tick()
    rows = await router.sql(
        "SELECT agent_id, status FROM offers WHERE ticket_id = :t ORDER BY offered_at", t=ticket_id
    )
    assert [r.status for r in rows] == ["timed_out", "pending"]
    assert rows[1].agent_id != first.agent_id
    detail = await router.ticket(ticket_id)
    last = detail["routing_decisions"][-1]["candidates"]
    assert {"agent_id": first.agent_id, "score": None, "passed_over": "declined_before"} in last


async def test_declined_offer_goes_to_the_next_agent_with_the_reason_recorded(
    router: Router,
) -> None:
    await router.agent("ann")
    await router.agent("ben")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    offer = (await router.sql("SELECT id, agent_id FROM offers WHERE ticket_id = :t", t=ticket_id))[
        0
    ]
    wrong = await router.client.post(
        f"/v1/offers/{offer.id}/decline", json={"reason": "x"}, headers=as_agent("nobody")
    )
    assert wrong.status_code == 404  # another agent's offer is not there for this one
    declined = await router.client.post(
        f"/v1/offers/{offer.id}/decline",
        json={"reason": "not my language"},
        headers=as_agent(offer.agent_id),
    )
    assert declined.json()["status"] == "declined"
    await router.assigner.tick()
    rows = await router.sql(
        "SELECT agent_id, status FROM offers WHERE ticket_id = :t ORDER BY offered_at", t=ticket_id
    )
    assert rows[-1].status == "pending"
    assert rows[-1].agent_id != offer.agent_id
    again = await router.client.post(
        f"/v1/offers/{offer.id}/accept", headers=as_agent(offer.agent_id)
    )
    assert again.status_code == 409


async def test_routing_decision_explains_every_candidate(router: Router) -> None:
    await router.agent("a-tech", skills={"technical": 4})
    await router.agent("b-tech", skills={"technical": 2})
    await router.agent("c-none", skills={})
    await router.agent("d-off", skills={"technical": 5}, status="offline")
    ticket_id = await router.receive(
        contact(uuid.uuid4(), text_="your app has been down for an hour, cannot pay at checkout")
    )
    await router.assigner.tick()
    decision = (await router.ticket(ticket_id))["routing_decisions"][0]
    reasons = {c["agent_id"]: c["passed_over"] for c in decision["candidates"]}
    assert decision["queue_id"] == "technical"
    assert decision["policy_version"] == 1
    assert reasons["c-none"] == "missing_skill"
    assert reasons["d-off"] == "offline"
    assert reasons[decision["chosen_agent_id"]] is None
    assert decision["tie_breaker"]


async def test_routing_candidates_are_stored_lz4_compressed(router: Router) -> None:
    """Every decision stores every agent considered (~6 kB of JSON with 300 agents, by column:
    `domain.assignment.candidates_json`); pglz, PostgreSQL's default, was the costliest part of
    writing an assignment (migration 0005)."""
    for n in range(150):
        await router.agent(f"agent-{n:02}", skills={"technical": 1 + n % 4})
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="app down: 故障, cannot log in"))
    await router.assigner.tick()
    async with router.runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT pg_column_compression(candidates) AS method, "
                    "octet_length(candidates::text) AS size FROM routing_decisions "
                    "WHERE ticket_id = :t"
                ),
                {"t": ticket_id},
            )
        ).one()
    assert row.size > 2048  # large enough that PostgreSQL compresses it
    assert row.method == "lz4"
    # Read back as the list of objects it replaces, at under half that list's size.
    listed = (await router.ticket(ticket_id))["routing_decisions"][0]["candidates"]
    assert len(listed) == 150
    assert {tuple(sorted(c)) for c in listed} == {("agent_id", "passed_over", "score")}
    assert row.size < len(orjson.dumps(listed)) / 2


async def test_overflow_moves_a_waiting_ticket_to_the_next_step(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="我要投诉"))
    assert (await router.ticket(ticket_id))["queue_id"] == "complaints"
    await router.sql("UPDATE tickets SET step_timeout_at = now() - interval '1 second'")
    await router.assigner.tick()
    ticket = await router.ticket(ticket_id)
    assert ticket["queue_id"] == "frontline"
    assert ticket["history"][-1]["action"] == "overflow"


async def test_no_double_assignment_with_two_router_replicas(router_factory) -> None:
    first = await router_factory()
    second = await router_factory()
    for n in range(8):
        await first.agent(f"agent-{n}", capacity={"phone": 1, "chat": 0, "email": 0, "social": 0})
    for _ in range(30):
        await first.receive(contact(uuid.uuid4(), channel="phone", text_="hello"))
    for _ in range(4):
        await asyncio.gather(
            first.assigner.tick(),
            second.assigner.tick(),
            first.assigner.tick(),
            second.assigner.tick(),
        )
    per_ticket = await first.sql(
        "SELECT ticket_id, count(*) AS n FROM offers WHERE status = 'pending' GROUP BY 1"
    )
    per_agent = await first.sql(
        "SELECT assignee_agent_id AS a, count(*) AS n FROM tickets "
        "WHERE status = 'assigned' GROUP BY 1"
    )
    assert all(r.n == 1 for r in per_ticket)
    assert len(per_agent) == 8
    assert all(r.n == 1 for r in per_agent)
    assert first.assigner.offers_made + second.assigner.offers_made == 8


async def test_equal_agents_get_equal_shares(router: Router) -> None:
    agents = ["e1", "e2", "e3", "e4"]
    for agent in agents:
        await router.agent(agent, capacity={"chat": 1, "phone": 0, "email": 0, "social": 0})
    for _ in range(24):
        await router.receive(contact(uuid.uuid4(), text_="hello"))
    served: Counter[str] = Counter()
    for _ in range(24):
        await router.assigner.tick()
        for agent in agents:
            for offer in await router.offers(agent):
                await router.client.post(
                    f"/v1/offers/{offer['id']}/accept", headers=as_agent(agent)
                )
                await router.client.post(
                    f"/v1/tickets/{offer['ticket_id']}/resolve",
                    json={"resolution_code": "answered", "first_contact_resolution": True},
                )
                served[agent] += 1
    assert sum(served.values()) == 24
    assert max(served.values()) - min(served.values()) <= 1


async def test_a_decline_committed_after_the_round_read_its_tickets_still_counts(
    router: Router,
) -> None:
    """The round chose the agent from an older snapshot; another replica offered the ticket
    to that agent and had it declined meanwhile. Under the agent locks the round reads the
    declines again and drops that offer instead of making it a second time."""
    from types import SimpleNamespace

    from router.db.agents import roster as _roster
    from router.domain.assignment import Decision
    from router.tasks.assignment import _confirm

    await router.agent("ann")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    async with router.runtime.engine.connect() as conn:
        roster = await _roster(conn)
    ticket = SimpleNamespace(id=ticket_id, channel="chat")
    plan = (ticket, Decision("ann", "longest_idle", (), "only one", None))
    # What the other replica committed in between: its offer to ann, declined.
    await router.sql(
        "INSERT INTO offers (id, ticket_id, agent_id, status, offered_at, expires_at, "
        "decision_id) VALUES (:id, :t, 'ann', 'declined', now(), now(), :d)",
        id=uuid.uuid4(),
        t=ticket_id,
        d=uuid.uuid4(),
    )
    now = roster["ann"].idle_reference()
    cooldown_from = now - timedelta(minutes=1)
    async with router.runtime.engine.begin() as conn:
        assert await _confirm(conn, [plan], roster, now, cooldown_from) == []
    async with router.runtime.engine.begin() as conn:  # the other ticket-agent pairs still go
        other = SimpleNamespace(id=await router.receive(contact(uuid.uuid4())), channel="chat")
        kept = await _confirm(conn, [(other, plan[1])], roster, now, cooldown_from)
        assert [t.id for t, _ in kept] == [other.id]


async def test_ticket_changes_do_not_wait_for_an_offer_round_holding_their_agent(
    router: Router,
) -> None:
    """An offer round locks its chosen agents while it writes. Accepting, replying, resolving
    a ticket of such an agent references the agent (foreign keys): it must not queue behind
    the round (nor the round behind it): the round's lock is NO KEY UPDATE, not UPDATE."""
    from router.db.agents import LOCK_AGENTS as _LOCK_AGENTS

    await router.agent("ann")
    await router.receive(contact(uuid.uuid4(), text_="hello"))
    offer = await _offer_of(router, "ann")
    async with router.runtime.engine.connect() as round_:
        await round_.begin()
        await round_.execute(_LOCK_AGENTS, {"ids": ["ann"]})  # a round of another replica
        accepted = await asyncio.wait_for(
            router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("ann")),
            timeout=5,
        )
        assert accepted.status_code == 200, accepted.text
        await round_.rollback()


async def test_one_round_offers_the_waiting_tickets_of_every_queue(router: Router) -> None:
    """A round takes every queue's waiting tickets in one batch: each offer with its own
    queue's decision and offer timeout, and a round-robin cursor kept per queue."""
    for name in ("r1", "r2", "r3"):
        await router.agent(name, skills={"technical": 3, "billing": 3})
    await router.sql(
        "UPDATE queues SET strategy = 'round_robin', offer_timeout_s = "
        "CASE id WHEN 'technical' THEN 60 ELSE 120 END WHERE id IN ('technical', 'billing')"
    )
    technical = [
        await router.receive(contact(uuid.uuid4(), text_="the app is down, 故障, cannot log in"))
        for _ in range(2)
    ]
    billing = [
        await router.receive(contact(uuid.uuid4(), text_="I was charged twice, 我要退款"))
        for _ in range(3)
    ]
    for ticket_id in technical:
        assert (await router.ticket(ticket_id))["queue_id"] == "technical"
    for ticket_id in billing:
        assert (await router.ticket(ticket_id))["queue_id"] == "billing"

    assert await router.assigner.tick() == 5  # one round, both queues

    rows = await router.sql(
        "SELECT d.queue_id, o.agent_id, "
        "  EXTRACT(EPOCH FROM o.expires_at - o.offered_at)::int AS timeout_s "
        "FROM offers o JOIN routing_decisions d ON d.id = o.decision_id "
        "JOIN tickets t ON t.id = o.ticket_id ORDER BY t.queued_at"
    )
    assert [(r.queue_id, r.agent_id, r.timeout_s) for r in rows] == [
        ("technical", "r1", 60),
        ("technical", "r2", 60),
        ("billing", "r1", 120),
        ("billing", "r2", 120),
        ("billing", "r3", 120),
    ]
    cursors = await router.sql(
        "SELECT id, rr_cursor FROM queues WHERE id IN ('technical', 'billing') ORDER BY id"
    )
    assert [(c.id, c.rr_cursor) for c in cursors] == [("billing", "r3"), ("technical", "r2")]


async def test_the_most_urgent_waiting_ticket_is_offered_first(router: Router) -> None:
    """Priority, then the nearest SLA deadline (none: last), then the longest wait."""
    await router.agent("solo", capacity={"chat": 1, "phone": 0, "email": 0, "social": 0})
    tickets = [
        await router.receive(contact(uuid.uuid4(), channel="chat", text_="hello")) for _ in range(4)
    ]
    # (priority rank, SLA deadline in minutes or none, queued minutes ago)
    setups = [(2, None, 30), (1, None, 20), (1, 50, 5), (1, 40, 1)]
    for ticket_id, (rank, deadline, ago) in zip(tickets, setups, strict=True):
        await router.sql(
            "UPDATE tickets SET priority_rank = :rank, queued_at = now() - make_interval("
            "mins => :ago), sla_deadline = now() + make_interval(mins => :deadline) WHERE id = :t",
            rank=rank,
            ago=ago,
            deadline=deadline,
            t=ticket_id,
        )
    offered = []
    for _ in range(4):
        await router.assigner.tick()
        (offer,) = await router.offers("solo")
        offered.append(uuid.UUID(offer["ticket_id"]))
        closed = await router.client.post(
            f"/v1/tickets/{offer['ticket_id']}/close", json={"reason": "done"}
        )
        assert closed.status_code == 200, closed.text  # frees the agent's one chat
    # The nearest deadline first, then the other with one, then the one without, and the
    # lower priority last, however long each has waited.
    assert offered == [tickets[3], tickets[2], tickets[1], tickets[0]]


async def test_an_offer_is_rescinded_when_its_ticket_moves_on(router: Router) -> None:
    """A transfer (or a close, an escalation...) of an offered ticket voids the offer: its
    agent no longer sees it, and accepting it cannot take the ticket back."""
    await router.agent("ana")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    offer = await _offer_of(router, "ana")
    await router.agent("ben")
    moved = await router.client.post(
        f"/v1/tickets/{ticket_id}/transfer", json={"to_agent_id": "ben", "reason": "language"}
    )
    assert moved.status_code == 200, moved.text
    assert await router.offers("ana") == []
    stale = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("ana"))
    assert stale.status_code == 409
    assert stale.json()["offer_status"] == "rescinded"
    (row,) = await router.sql("SELECT status, reason FROM offers WHERE id = :id", id=offer["id"])
    assert row.status == "rescinded"
    assert "transfer" in row.reason
    assert (await router.ticket(ticket_id))["assignee_agent_id"] == "ben"


async def test_replying_to_an_offered_ticket_accepts_its_offer(router: Router) -> None:
    """Answering is starting work: the offer is accepted, not rescinded or left to time out
    (which would count as the agent's decline)."""
    await router.agent("ria")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    offer = await _offer_of(router, "ria")
    reply = await router.client.post(f"/v1/tickets/{ticket_id}/reply", json={"agent_id": "ria"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "in_progress"
    (row,) = await router.sql("SELECT status FROM offers WHERE id = :id", id=offer["id"])
    assert row.status == "accepted"
    assert await router.offers("ria") == []
    assert reply.json()["owner_agent_id"] == "ria"  # the first to take it owns it


async def test_an_offer_whose_ticket_moved_on_unnoticed_is_refused_and_voided(
    router: Router,
) -> None:
    """Accept checks the ticket is still on offer to this agent, and voids the offer if not
    (here the ticket is moved behind the router's back, as a change racing the accept would)."""
    await router.agent("uma")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    offer = await _offer_of(router, "uma")
    await router.sql(
        "UPDATE tickets SET status = 'queued', assignee_agent_id = NULL WHERE id = :t", t=ticket_id
    )
    stale = await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("uma"))
    assert stale.status_code == 409
    assert stale.json()["ticket_status"] == "queued"
    (row,) = await router.sql("SELECT status FROM offers WHERE id = :id", id=offer["id"])
    assert row.status == "rescinded"
    assert (await router.ticket(ticket_id))["assignee_agent_id"] is None


async def test_waiting_tickets_nobody_can_take_do_not_hide_the_others(router: Router) -> None:
    """51 phone tickets at the head of a queue and no free phone capacity: the chats behind
    them are still offered (a window per queue and channel), and the phones are not scanned
    again and again within the round."""
    await router.agent("chat-only", capacity={"chat": 60, "phone": 0, "email": 0, "social": 0})
    for _ in range(51):
        await router.receive(contact(uuid.uuid4(), channel="phone", text_="hello"))
    for _ in range(51):  # a full window of chats, then one more: a second batch is due
        await router.receive(contact(uuid.uuid4(), channel="chat", text_="hello"))
    batches: list[int] = []
    real = router.assigner._offer_batch

    async def counting(queues: Any, now: Any, roster: Any) -> Any:
        batches.append(len(queues))
        return await real(queues, now, roster)

    router.assigner._offer_batch = counting  # type: ignore[method-assign]
    offered = await router.assigner.tick()
    assert offered == 51
    assert len(batches) <= 3
