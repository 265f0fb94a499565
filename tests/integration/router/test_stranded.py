"""No ticket is stranded: a missed offer moves the agent away (and says so), a refusal keeps
an agent from a ticket for a cooldown, not for ever; wrap-up after resolve; status history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.helpers import as_agent, as_supervisor
from tests.integration.router.conftest import Router, contact


async def _capture_events(router: Router) -> None:
    """Keep a copy of every outbox row (the relay deletes them once published)."""
    await router.sql("CREATE TABLE captured_outbox (LIKE outbox)")
    await router.sql(
        "CREATE FUNCTION capture_outbox() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO captured_outbox SELECT NEW.*; RETURN NEW; END $$"
    )
    await router.sql(
        "CREATE TRIGGER capture_outbox AFTER INSERT ON outbox "
        "FOR EACH ROW EXECUTE FUNCTION capture_outbox()"
    )


async def _agent_events(router: Router, agent_id: str) -> list[dict[str, Any]]:
    rows = await router.sql(
        "SELECT topic, key, value FROM captured_outbox "
        "WHERE event_type = 'agent.status_changed' AND key = :a ORDER BY id",
        a=agent_id,
    )
    assert {r.topic for r in rows} <= {"router.tickets"}
    return [orjson.loads(bytes(r.value))["payload"] for r in rows]


async def _offered_to(router: Router, ticket_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await router.sql(
        "SELECT ticket_id, agent_id FROM offers WHERE status = 'pending' AND ticket_id = ANY(:t)",
        t=ticket_ids,
    )
    return {r.ticket_id: r.agent_id for r in rows}


async def _agent(router: Router, agent_id: str) -> dict[str, Any]:
    response = await router.client.get(f"/v1/agents/{agent_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_one_agent_who_missed_offers_gets_them_again_after_the_cooldown(
    router: Router,
) -> None:
    """The report: one agent, four tickets, her offers time out; she sets herself available
    again and the tickets stayed `queued` for ever. Now she moves to `away` (missed_offer)
    when they time out, and once back, gets them again after the refusal cooldown."""
    await _capture_events(router)
    await router.agent("ann", capacity={"chat": 5})
    ticket_ids = [await router.receive(contact(uuid.uuid4(), text_="hello")) for _ in range(4)]
    await router.assigner.tick()
    assert await _offered_to(router, ticket_ids) == dict.fromkeys(ticket_ids, "ann")

    await router.sql("UPDATE offers SET expires_at = now() - interval '1 second'")
    await router.assigner.tick()
    ann = await _agent(router, "ann")
    assert (ann["status"], ann["status_reason"]) == ("away", "missed_offer")
    assert ann["status_since"] is not None
    statuses = await router.sql(
        "SELECT DISTINCT status FROM tickets WHERE id = ANY(:t)", t=ticket_ids
    )
    assert [r.status for r in statuses] == ["queued"]
    missed = (await _agent_events(router, "ann"))[-1]
    assert (missed["from_status"], missed["to_status"]) == ("available", "away")
    assert missed["reason"] == "missed_offer"
    assert missed["actor"] == "router"
    assert uuid.UUID(missed["ticket_id"]) in ticket_ids

    back = await router.client.put(
        "/v1/agents/ann/status", json={"status": "available"}, headers=as_agent("ann")
    )
    assert back.json()["status_reason"] is None
    await router.assigner.tick()  # within the cooldown: not yet
    assert await _offered_to(router, ticket_ids) == {}

    later = datetime.now(UTC) + timedelta(seconds=router.assigner.refusal_cooldown_s + 1)
    await router.assigner.tick(later)
    assert await _offered_to(router, ticket_ids) == dict.fromkeys(ticket_ids, "ann")


async def test_a_declined_ticket_comes_back_to_the_agent_after_the_cooldown(
    router: Router,
) -> None:
    await router.agent("ann")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    offer = (await router.offers("ann"))[0]
    declined = await router.client.post(
        f"/v1/offers/{offer['id']}/decline", json={"reason": "busy"}, headers=as_agent("ann")
    )
    assert declined.status_code == 200, declined.text
    assert (await _agent(router, "ann"))["status"] == "available"  # a decline is not a miss
    await router.assigner.tick()
    assert await _offered_to(router, [ticket_id]) == {}
    later = datetime.now(UTC) + timedelta(seconds=router.assigner.refusal_cooldown_s + 1)
    await router.assigner.tick(later)
    assert await _offered_to(router, [ticket_id]) == {ticket_id: "ann"}


async def test_the_refusal_cooldown_and_missed_offer_status_are_settings(router_factory) -> None:
    router = await router_factory(refusal_cooldown_s=0, missed_offer_status="available")
    await router.agent("ann")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    await router.sql("UPDATE offers SET expires_at = now() - interval '1 second'")
    await router.assigner.tick()
    assert (await _agent(router, "ann"))["status"] == "available"
    assert await _offered_to(router, [ticket_id]) == {ticket_id: "ann"}


async def test_an_agent_who_went_offline_is_not_moved_by_a_missed_offer(router: Router) -> None:
    await router.agent("ann")
    await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    await router.client.put("/v1/agents/ann/status", json={"status": "offline"})
    await router.sql("UPDATE offers SET expires_at = now() - interval '1 second'")
    await router.assigner.tick()
    ann = await _agent(router, "ann")
    assert (ann["status"], ann["status_reason"]) == ("offline", None)


async def _set_wrap_up(router: Router, queue_id: str, seconds: int) -> None:
    queue = next(q for q in (await router.client.get("/v1/queues")).json() if q["id"] == queue_id)
    body = {k: queue[k] for k in ("name", "required_skills", "strategy", "offer_timeout_s")}
    response = await router.client.put(
        f"/v1/queues/{queue_id}", json={**body, "wrap_up_s": seconds}
    )
    assert response.status_code == 200, response.text
    assert response.json()["wrap_up_s"] == seconds


async def test_after_resolve_the_agent_wraps_up_for_the_queues_seconds(router: Router) -> None:
    await _capture_events(router)
    await router.agent("ann", capacity={"chat": 5})
    first = await router.receive(contact(uuid.uuid4(), text_="hello"))
    queue_id = (await router.ticket(first))["queue_id"]
    await _set_wrap_up(router, queue_id, 30)
    await router.assigner.tick()
    offer = (await router.offers("ann"))[0]
    await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("ann"))
    resolved = await router.client.post(
        f"/v1/tickets/{first}/resolve",
        json={"resolution_code": "answered", "first_contact_resolution": True},
        headers=as_agent("ann"),
    )
    assert resolved.status_code == 200, resolved.text
    ann = await _agent(router, "ann")
    assert (ann["status"], ann["status_reason"]) == ("wrap_up", "wrap_up")
    until = datetime.fromisoformat(ann["wrap_up_until"])
    assert timedelta(seconds=29) < until - datetime.fromisoformat(ann["status_since"])

    second = await router.receive(contact(uuid.uuid4(), text_="hello again"))
    await router.assigner.tick()
    assert await _offered_to(router, [second]) == {}  # no offers while wrapping up

    await router.assigner.tick(until + timedelta(seconds=1))
    ann = await _agent(router, "ann")
    assert (ann["status"], ann["status_reason"]) == ("available", "wrap_up_ended")
    assert ann["wrap_up_until"] is None
    assert await _offered_to(router, [second]) == {second: "ann"}
    reasons = [(e["to_status"], e["reason"]) for e in await _agent_events(router, "ann")]
    assert reasons[-2:] == [("wrap_up", "wrap_up"), ("available", "wrap_up_ended")]


async def test_without_a_wrap_up_the_agent_stays_available_after_resolve(router: Router) -> None:
    await router.agent("ann")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    offer = (await router.offers("ann"))[0]
    await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("ann"))
    await router.client.post(
        f"/v1/tickets/{ticket_id}/resolve",
        json={"resolution_code": "answered", "first_contact_resolution": True},
    )
    assert (await _agent(router, "ann"))["status"] == "available"


async def test_status_history_records_each_status_with_reason_and_since(router: Router) -> None:
    await router.agent("ann")
    await router.agent("bob", status="offline")
    await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    await router.sql("UPDATE offers SET expires_at = now() - interval '1 second'")
    await router.assigner.tick()
    await router.client.put("/v1/agents/ann/status", json={"status": "busy"})
    await router.client.put("/v1/agents/ann/status", json={"status": "busy"})  # no change

    mine = await router.client.get("/v1/agents/ann/status-history", headers=as_agent("ann"))
    assert mine.status_code == 200, mine.text
    history = mine.json()
    assert [(h["status"], h["reason"], h["actor"]) for h in history] == [
        ("available", None, "supervisor:sup"),
        ("away", "missed_offer", "router"),
        ("busy", None, "supervisor:sup"),
    ]
    assert [h["since"] for h in history] == sorted(h["since"] for h in history)

    supervisor = await router.client.get("/v1/agents/ann/status-history", headers=as_supervisor())
    assert supervisor.json() == history
    other = await router.client.get("/v1/agents/ann/status-history", headers=as_agent("bob"))
    assert other.status_code == 403
    assert "missed_offer" not in other.text
    assert "busy" not in other.text
    missing = await router.client.get("/v1/agents/nobody/status-history")
    assert missing.status_code == 404


async def test_an_offer_batch_costs_the_same_statements_for_1_ticket_as_for_20(
    router: Router,
) -> None:
    """The cooldown is a parameter of the batch's statements, not more of them: a round
    sends as many statements for 20 tickets (some refused, before and within the cooldown)
    as for one (counted as SQLAlchemy sends them)."""
    from sqlalchemy import event as sa_event

    await router.agent("ann", capacity={"chat": 30})
    await router.agent("bob", capacity={"chat": 30}, status="offline")
    counts = []
    for size in (1, 20):
        ids = [await router.receive(contact(uuid.uuid4(), text_="hello")) for _ in range(size)]
        for age, ticket_id in zip((5, 500), ids, strict=False):
            await router.sql(
                "INSERT INTO offers (id, ticket_id, agent_id, status, offered_at, expires_at, "
                "responded_at, decision_id) VALUES (:id, :t, 'bob', 'declined', now(), now(), "
                "now() - make_interval(secs => :age), :d)",
                id=uuid.uuid4(),
                t=ticket_id,
                age=age,
                d=uuid.uuid4(),
            )
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        engine = router.runtime.engine.sync_engine
        router.assigner.nudge()
        sa_event.listen(engine, "before_cursor_execute", count)
        try:
            assert await router.assigner.tick(housekeeping=False) == size
        finally:
            sa_event.remove(engine, "before_cursor_execute", count)
        counts.append(statements)
    assert counts[0] == counts[1]
    # queues with waiting tickets, the roster and its loads; the batch: waiting tickets with
    # their recent refusals, lock the agents, their loads and refusals, write the offers.
    assert counts[1] == 7


async def test_an_agent_goes_away_with_a_reason_of_their_own_kept_in_the_history(
    router: Router,
) -> None:
    await router.agent("ann")
    lunch = await router.client.put(
        "/v1/agents/ann/status",
        json={"status": "away", "reason": "午休 lunch"},
        headers=as_agent("ann"),
    )
    assert lunch.status_code == 200, lunch.text
    assert lunch.json()["status_reason"] == "午休 lunch"
    history = (await router.client.get("/v1/agents/ann/status-history")).json()
    assert (history[-1]["status"], history[-1]["reason"]) == ("away", "午休 lunch")
    for body, field in (
        ({"status": "available", "reason": "back"}, "body"),  # a reason goes with away only
        ({"status": "away", "reason": "wrap_up"}, "body.reason"),  # the router's own
        ({"status": "away", "reason": "   "}, "body.reason"),
        ({"status": "away", "reason": "x" * 101}, "body.reason"),
    ):
        refused = await router.client.put(
            "/v1/agents/ann/status", json=body, headers=as_agent("ann")
        )
        assert refused.status_code == 422, body
        assert field in refused.text, refused.text
    assert (await _agent(router, "ann"))["status_reason"] == "午休 lunch"
