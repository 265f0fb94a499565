"""SLA escalations and feedback follow-ups applied once; the routing policy changed live."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from ccshared.db import asyncpg_dsn
from ccshared.events import new_event
from ccshared.events.payloads import FollowUpRequested, SlaEscalated
from ccshared.outbox import NOTIFY_CHANNEL
from router.consumers.feedback import from_feedback
from router.consumers.sla import apply_escalations, apply_escalations_in_bulk
from tests.helpers import as_agent, wait_until
from tests.integration.router.conftest import Router, contact


async def _deliver(router: Router, handler_factory, payload) -> None:
    handler = handler_factory(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, new_event(payload, producer="test"), payload)


async def test_escalation_raises_priority_and_moves_to_escalations_once(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="会员积分怎么兑换？"))
    assert (await router.ticket(ticket_id))["priority"] == "normal"
    escalation = SlaEscalated(
        ticket_id=ticket_id,
        metric="first_response",
        level=2,
        actions=["raise_priority", "move_to_escalation_queue", "notify_supervisor"],
        raise_priority_to="urgent",
        escalation_queue_id="escalations",
        at=datetime.now(UTC),
    )
    await _deliver(router, apply_escalations, escalation)
    await _deliver(router, apply_escalations, escalation)  # redelivered: no second effect
    ticket = await router.ticket(ticket_id)
    assert ticket["priority"] == "urgent"
    assert ticket["queue_id"] == "escalations"
    actions = [h["action"] for h in ticket["history"]]
    assert actions.count("escalate") == 1
    assert actions.count("raise_priority") == 1
    assert "notify_supervisor" in actions


async def test_a_fetch_of_escalations_is_applied_in_order_as_one_by_one(router: Router) -> None:
    """The consumer hands a whole fetch to the batch handler: tickets locked at once, changes
    written together. Each escalation must still act as alone and in order: two levels of
    one ticket, the second taking it back from the agent it was offered to; an unknown and a
    closed ticket left alone."""
    await router.agent("eve")
    held = await router.receive(contact(uuid.uuid4(), text_="会员积分怎么兑换？"))
    await router.assigner.tick()
    assert (await router.ticket(held))["status"] == "assigned"
    queued = await router.receive(contact(uuid.uuid4(), text_="where is my parcel?"))
    closed = await router.receive(contact(uuid.uuid4()))
    await router.client.post(f"/v1/tickets/{closed}/close", json={"reason": "spam"})

    def escalation(ticket: uuid.UUID, level: int, actions: list[str]) -> SlaEscalated:
        return SlaEscalated(
            ticket_id=ticket,
            metric="first_response",
            level=level,
            actions=actions,  # type: ignore[arg-type]
            raise_priority_to="high" if level == 1 else "urgent",
            at=datetime.now(UTC),
        )

    batch = [
        escalation(held, 1, ["raise_priority"]),
        escalation(queued, 1, ["raise_priority", "notify_supervisor"]),
        escalation(uuid.uuid4(), 1, ["raise_priority"]),
        escalation(closed, 1, ["raise_priority"]),
        escalation(held, 2, ["raise_priority", "move_to_escalation_queue", "notify_manager"]),
    ]
    handler = apply_escalations_in_bulk(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, [(new_event(p, producer="test"), p) for p in batch])

    first = await router.ticket(held)
    assert (first["priority"], first["queue_id"], first["status"]) == (
        "urgent",
        "escalations",
        "queued",
    )
    assert first["assignee_agent_id"] is None
    assert [(h["action"], h["reason"]) for h in first["history"] if h["actor"] == "sla"] == [
        ("raise_priority", "SLA first_response escalation level 1"),
        ("raise_priority", "SLA first_response escalation level 2"),
        ("transfer", "SLA first_response escalation level 2"),
        ("escalate", "SLA first_response escalation level 2"),
        ("notify_manager", "SLA first_response escalation level 2"),
    ]
    assert [o["status"] for o in await router.offers("eve")] == []  # the offer was rescinded
    second = await router.ticket(queued)
    assert second["priority"] == "high"
    assert [h["action"] for h in second["history"] if h["actor"] == "sla"] == [
        "raise_priority",
        "notify_supervisor",
    ]
    assert (await router.ticket(closed))["priority"] == "normal"


async def test_escalations_that_publish_nothing_do_not_wake_the_relay(router: Router) -> None:
    """The outbox's NOTIFY fires per INSERT statement, even one inserting no rows: writes with
    no events must leave the outbox out, or every priority raise wakes every relay."""
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="会员积分怎么兑换？"))
    listener = await asyncpg.connect(asyncpg_dsn(router.runtime.engine.url))
    woken: list[str] = []
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: woken.append(str(args[-1])))
    try:

        def escalation(actions: list[str]) -> SlaEscalated:
            return SlaEscalated(
                ticket_id=ticket_id,
                metric="resolution",
                level=1,
                actions=actions,  # type: ignore[arg-type]
                raise_priority_to="high",
                at=datetime.now(UTC),
            )

        await _deliver(router, apply_escalations, escalation(["raise_priority"]))
        await _deliver(router, apply_escalations, escalation(["notify_supervisor"]))
        await asyncio.sleep(0.3)  # a notification would have arrived by now
        assert woken == []
        history = [h["action"] for h in (await router.ticket(ticket_id))["history"]]
        assert history[-2:] == ["raise_priority", "notify_supervisor"]

        await _deliver(router, apply_escalations, escalation(["move_to_escalation_queue"]))
        await wait_until(lambda: _true(bool(woken)))  # TicketRouted: the relay is woken
    finally:
        await listener.close()


async def _true(value: bool) -> bool:
    return value


async def test_escalation_of_an_unknown_or_closed_ticket_changes_nothing(router: Router) -> None:
    ticket_id = await router.receive(contact(uuid.uuid4()))
    await router.client.post(f"/v1/tickets/{ticket_id}/close", json={"reason": "spam"})
    for target in (ticket_id, uuid.uuid4()):
        await _deliver(
            router,
            apply_escalations,
            SlaEscalated(
                ticket_id=target,
                metric="resolution",
                level=1,
                actions=["raise_priority"],
                raise_priority_to="urgent",
                at=datetime.now(UTC),
            ),
        )
    assert (await router.ticket(ticket_id))["priority"] == "normal"


async def test_detractor_follow_up_opens_one_ticket_owned_by_the_first_agent(
    router: Router,
) -> None:
    await router.agent("amy", skills={"complaints": 3})
    customer = uuid.uuid4()
    original = await router.receive(contact(customer, channel="phone", text_="我要投诉"))
    await router.assigner.tick()
    offer = (await router.offers("amy"))[0]
    await router.client.post(f"/v1/offers/{offer['id']}/accept", headers=as_agent("amy"))
    follow_up = FollowUpRequested(
        follow_up_id=uuid.uuid4(),
        customer_id=customer,
        ticket_id=original,
        reason="detractor",
        language="zh",
        note="CSAT 1: 还是漏水",
        due_at=datetime.now(UTC),
    )
    await _deliver(router, from_feedback, follow_up)
    await _deliver(router, from_feedback, follow_up)
    ticket = await router.ticket(follow_up.follow_up_id)
    assert ticket["follow_up_of"] == str(original)
    assert ticket["category"] == "follow_up"
    assert ticket["owner_agent_id"] == "amy"
    assert ticket["queue_id"] == "complaints"
    rows = await router.sql("SELECT count(*) AS n FROM tickets WHERE follow_up_of = :t", t=original)
    assert rows[0].n == 1


async def test_policy_change_applies_to_new_tickets_without_restart(router: Router) -> None:
    current = (await router.client.get("/v1/routing-policy")).json()
    assert current["version"] == 1
    steps = [
        {"id": "chat-to-billing", "condition": 'ticket.channel == "chat"', "queue_id": "billing"},
        {"id": "rest", "condition": "true", "queue_id": "frontline"},
    ]
    response = await router.client.put("/v1/routing-policy", json={"steps": steps})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    ticket = await router.ticket(ticket_id)
    assert ticket["queue_id"] == "billing"
    assert ticket["policy_version"] == 2
    assert ticket["policy_step"] == "chat-to-billing"


async def test_invalid_policy_is_422_naming_the_step_and_changes_nothing(router: Router) -> None:
    bad_condition = [{"id": "s1", "condition": "ticket.channel == ", "queue_id": "billing"}]
    response = await router.client.put("/v1/routing-policy", json={"steps": bad_condition})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.steps.0.condition"
    unknown_queue = [{"id": "s1", "condition": "true", "queue_id": "nowhere"}]
    response = await router.client.put("/v1/routing-policy", json={"steps": unknown_queue})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.steps.0.queue_id"
    python = [{"id": "s1", "condition": "__import__('os').system('id')", "queue_id": "billing"}]
    assert (
        await router.client.put("/v1/routing-policy", json={"steps": python})
    ).status_code == 422
    assert (await router.client.get("/v1/routing-policy")).json()["version"] == 1


async def test_policy_regex_re2_cannot_run_is_422_naming_the_condition(router: Router) -> None:
    for pattern in (r"(a)\\1", r"(?<!not )refund", r"refund(?=now)"):
        steps = [
            {"id": "s1", "condition": f'matches(text, "{pattern}")', "queue_id": "billing"},
            {"id": "s2", "condition": "true", "queue_id": "frontline"},
        ]
        response = await router.client.put("/v1/routing-policy", json={"steps": steps})
        assert response.status_code == 422, pattern
        body = response.json()
        assert body["errors"][0]["field"] == "body.steps.0.condition"
        assert "invalid regular expression" in body["errors"][0]["message"]
        assert "no backreferences or lookaround" in body["errors"][0]["message"]
    nested = [{"id": "s1", "condition": 'matches(text, "(a+)+$")', "queue_id": "frontline"}]
    response = await router.client.put("/v1/routing-policy", json={"steps": nested})
    assert response.status_code == 200  # linear under RE2, so no longer refused
    assert (await router.client.get("/v1/routing-policy")).json()["version"] == 2


async def test_policy_regex_too_costly_to_run_is_422_naming_the_condition(
    router: Router,
) -> None:
    # 180-270 ms and about 110 ms per evaluation on 20,000 Chinese characters before.
    for pattern in (r"[\\p{L}]{1,99}\\d{1,99}!", r"\\w{50}\\W{50}"):
        steps = [{"id": "s1", "condition": f'matches(text, "{pattern}")', "queue_id": "billing"}]
        response = await router.client.put("/v1/routing-policy", json={"steps": steps})
        assert response.status_code == 422, pattern
        [error] = response.json()["errors"]
        assert error["field"] == "body.steps.0.condition"
        assert "too costly to run" in error["message"]
    many = " || ".join([f'matches(text, "refund{i}")' for i in range(59)])
    steps = [{"id": "s1", "condition": many, "queue_id": "billing"}]
    response = await router.client.put("/v1/routing-policy", json={"steps": steps})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body.steps.0.condition"
    assert "at most 4 times" in error["message"]
    assert (await router.client.get("/v1/routing-policy")).json()["version"] == 1


async def test_queues_report_depth_and_bad_input_is_422(router: Router) -> None:
    for _ in range(3):
        await router.receive(contact(uuid.uuid4(), text_="发票开错了"))
    queues = {q["id"]: q for q in (await router.client.get("/v1/queues")).json()}
    assert queues["billing"]["depth"] == 3
    assert queues["billing"]["oldest_wait_s"] >= 0
    bad = await router.client.put("/v1/queues/x", json={"name": "X", "strategy": "random"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.strategy"
    bad_agent = await router.client.put("/v1/agents/a", json={"name": "A", "skills": {"x": 9}})
    assert bad_agent.status_code == 422
    page = (await router.client.get("/v1/tickets", params={"limit": 2})).json()
    assert len(page["items"]) == 2
    rest = (await router.client.get("/v1/tickets", params={"cursor": page["next_cursor"]})).json()
    assert len(rest["items"]) == 1
    assert (await router.client.get("/v1/tickets", params={"cursor": "garbage"})).status_code == 422
