"""Notifications that reach people: escalations to the queue's supervisors and managers, new
and missed offers to the agent, detractor follow-ups to the owner and the queue's
supervisors, failed deliveries (a real message.delivery_changed on Kafka) to the owner; each
user reads and marks only their own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from ccshared.events import decode_event, new_event
from ccshared.events.catalog import INTAKE_DELIVERIES
from ccshared.events.payloads import FollowUpRequested, MessageDeliveryChanged, SlaEscalated
from ccshared.kafka import commit_group_at_end, ensure_topics
from router.app import create_app
from router.consumers.feedback import from_feedback
from router.consumers.sla import apply_escalations
from router.handlers.deliveries import apply_deliveries, apply_delivery
from router.settings import RouterSettings
from tests.conftest import TOPIC_PREFIX, topic
from tests.helpers import as_agent, as_supervisor, wait_until
from tests.integration.router.conftest import Router, contact
from tests.integration.router.test_conversation import held_ticket


async def _deliver(router: Router, handler_factory: Any, payload: Any) -> None:
    handler = handler_factory(router.runtime)
    async with router.runtime.engine.begin() as conn:
        await handler(conn, new_event(payload, producer="test"), payload)


async def notifications_of(router: Router, who: dict[str, str], **params: Any) -> list[dict]:
    response = await router.client.get("/v1/notifications", headers=who, params=params)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


async def _queue(router: Router, queue_id: str, **people: list[str]) -> None:
    body = {"name": queue_id, "required_skills": [], **people}
    response = await router.client.put(f"/v1/queues/{queue_id}", json=body)
    assert response.status_code == 200, response.text


async def test_an_escalation_notifies_the_queues_supervisors_and_managers(router: Router) -> None:
    await _queue(router, "escalations", supervisors=["lin", "mo"], managers=["zoe"])
    listed = {q["id"]: q for q in (await router.client.get("/v1/queues")).json()}
    assert listed["escalations"]["supervisors"] == ["lin", "mo"]
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="会员积分"))
    escalation = SlaEscalated(
        ticket_id=ticket_id,
        metric="first_response",
        level=2,
        actions=["move_to_escalation_queue", "notify_supervisor", "notify_manager"],
        escalation_queue_id="escalations",
        at=datetime.now(UTC),
    )
    await _deliver(router, apply_escalations, escalation)
    await _deliver(router, apply_escalations, escalation)  # redelivered: nobody told twice
    for who in ("lin", "mo", "zoe"):
        (told,) = await notifications_of(router, as_supervisor(who))
        assert told["kind"] == "escalation"
        assert told["ticket_id"] == str(ticket_id)
        assert told["data"]["level"] == 2
    assert await notifications_of(router, as_supervisor("sup")) == []
    only_history = SlaEscalated(
        **{**escalation.model_dump(), "level": 3, "actions": ["notify_manager"]}
    )
    await _deliver(router, apply_escalations, only_history)
    assert len(await notifications_of(router, as_supervisor("zoe"))) == 2
    assert len(await notifications_of(router, as_supervisor("lin"))) == 1
    actions = [h["action"] for h in (await router.ticket(ticket_id))["history"]]
    # still recorded in the history too (a row per delivery, as before)
    assert actions.count("notify_manager") == 3


async def test_an_offer_and_a_missed_offer_notify_the_agent(router: Router) -> None:
    await router.runtime.relay.stop()  # the events stay in the outbox, to be read
    await router.agent("amy")
    ticket_id = await router.receive(contact(uuid.uuid4(), text_="hello"))
    await router.assigner.tick()
    (offer,) = await router.offers("amy")
    (new,) = await notifications_of(router, as_agent("amy"))
    assert (new["kind"], new["ticket_id"]) == ("new_offer", str(ticket_id))
    assert new["data"]["offer_id"] == offer["id"]
    await router.assigner.expire_offers(datetime.now(UTC) + timedelta(minutes=5))
    kinds = [n["kind"] for n in await notifications_of(router, as_agent("amy"))]
    assert kinds == ["missed_offer", "new_offer"]  # newest first
    events = await router.sql(
        "SELECT key FROM outbox WHERE event_type = 'notification.created' ORDER BY id"
    )
    assert [e.key for e in events] == ["amy", "amy"]


async def test_a_detractor_follow_up_notifies_its_owner_and_the_queues_supervisors(
    router: Router,
) -> None:
    await _queue(router, "complaints", supervisors=["lin"])
    await router.sql("UPDATE queues SET required_skills = '{complaints}' WHERE id = 'complaints'")
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
        note="CSAT 1",
        due_at=datetime.now(UTC),
    )
    await _deliver(router, from_feedback, follow_up)
    await _deliver(router, from_feedback, follow_up)  # redelivered: told once
    for who in (as_agent("amy"), as_supervisor("lin")):
        told = [n for n in await notifications_of(router, who) if n["kind"] == "follow_up"]
        assert [n["ticket_id"] for n in told] == [str(follow_up.follow_up_id)]
    path = f"/v1/tickets/{follow_up.follow_up_id}/messages"
    (opening,) = (await router.client.get(path)).json()["items"]
    assert opening["author"] == "router"  # the request, not something the customer wrote


async def test_users_read_and_mark_only_their_own_notifications(router: Router) -> None:
    await router.agent("bob", status="offline")
    ticket_id = await held_ticket(router, "amy")
    for i in range(3):
        r = await router.client.post(
            f"/v1/tickets/{ticket_id}/notes",
            json={"text": f"@bob look {i}"},
            headers=as_agent("amy"),
        )
        assert r.status_code == 201
    bobs = await notifications_of(router, as_agent("bob"))
    assert [n["read_at"] for n in bobs] == [None] * 3
    assert await notifications_of(router, as_agent("amy")) == []
    first = bobs[0]["id"]
    for who in (as_agent("amy"), as_supervisor()):
        refused = await router.client.post(f"/v1/notifications/{first}/read", headers=who)
        assert refused.status_code == 404
    assert (await notifications_of(router, as_agent("bob")))[0]["read_at"] is None
    read = await router.client.post(f"/v1/notifications/{first}/read", headers=as_agent("bob"))
    assert read.status_code == 200
    assert read.json()["read_at"] is not None
    again = await router.client.post(f"/v1/notifications/{first}/read", headers=as_agent("bob"))
    assert again.json()["read_at"] == read.json()["read_at"]
    unread = await notifications_of(router, as_agent("bob"), unread="true")
    assert [n["id"] for n in unread] == [n["id"] for n in bobs[1:]]
    page = await router.client.get(
        "/v1/notifications", headers=as_agent("bob"), params={"limit": 2}
    )
    rest = await router.client.get(
        "/v1/notifications",
        headers=as_agent("bob"),
        params={"limit": 2, "cursor": page.json()["next_cursor"]},
    )
    assert [n["id"] for n in page.json()["items"] + rest.json()["items"]] == [n["id"] for n in bobs]
    assert rest.json()["next_cursor"] is None


async def _reply(router: Router, ticket_id: uuid.UUID) -> uuid.UUID:
    r = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply", json={"text": "已退款 refunded"}, headers=as_agent("amy")
    )
    assert r.status_code == 200, r.text
    (row,) = await router.sql("SELECT id FROM ticket_messages WHERE ticket_id = :t", t=ticket_id)
    return uuid.UUID(str(row.id))


def _changed(message_id: uuid.UUID, ticket_id: uuid.UUID, state: str, **kw: Any) -> Any:
    return MessageDeliveryChanged(
        message_id=message_id,
        ticket_id=ticket_id,
        state=state,  # type: ignore[arg-type]
        at=datetime.now(UTC),
        **kw,
    )


async def test_delivery_states_never_go_back_and_a_repeated_report_changes_nothing(
    router: Router,
) -> None:
    ticket_id = await held_ticket(router, "amy")
    message_id = await _reply(router, ticket_id)

    async def report(state: str, **kw: Any) -> bool:
        async with router.runtime.engine.begin() as conn:
            return await apply_delivery(conn, _changed(message_id, ticket_id, state, **kw))

    assert await report("sent", provider_message_id="<m1@cc>")
    # The sent e-mail's Message-ID is a thread key of the ticket: the customer's answer to it
    # joins the ticket.
    keys = await router.sql("SELECT ticket_id FROM thread_keys WHERE key = 'email:m1@cc'")
    assert [k.ticket_id for k in keys] == [ticket_id]
    assert await report("delivered")
    assert not await report("delivered")  # redelivered
    assert not await report("sent")  # late
    assert not await report("failed", reason="too late")
    assert not await report("sent", attempt=2)
    (message,) = (await router.client.get(f"/v1/tickets/{ticket_id}/messages")).json()["items"][1:]
    assert message["delivery_state"] == "delivered"
    assert message["provider_message_id"] == "<m1@cc>"
    assert message["delivery_reason"] is None
    assert await router.sql("SELECT * FROM notifications WHERE kind = 'delivery_failed'") == []
    # A report of a message not ours, or of a note, is left alone.
    async with router.runtime.engine.begin() as conn:
        assert not await apply_delivery(conn, _changed(uuid.uuid4(), ticket_id, "sent"))


async def test_a_fetchs_delivery_reports_are_applied_in_order_as_if_one_by_one(
    router: Router,
) -> None:
    """The consumer applies a fetch's reports together (`apply_deliveries`: one statement each
    for locks, states, thread keys and notifications): the outcome is that of applying them
    one after the other, several reports of one message included."""
    first, second = await held_ticket(router, "amy"), await held_ticket(router, "amy")
    third = await held_ticket(router, "amy")
    m1, m2, m3 = [await _reply(router, t) for t in (first, second, third)]
    reports = [
        _changed(m1, first, "sent", provider_message_id="<a@cc>"),
        _changed(m1, first, "delivered"),
        _changed(m2, second, "sent", provider_message_id="<b@cc>"),
        _changed(m2, second, "failed", reason="550 mailbox unavailable"),
        _changed(m2, second, "sent"),  # late: failed is final
        _changed(uuid.uuid4(), first, "failed", provider_message_id="<x@cc>"),  # not ours
        _changed(m1, first, "delivered"),  # redelivered
        _changed(m1, second, "sent"),  # a reply of another ticket: left alone
        _changed(m3, third, "sent"),
        # A report that would change that reply, but names another ticket: left alone too
        # (no state, no thread key on the wrong ticket, nobody told).
        _changed(m3, first, "failed", reason="550", provider_message_id="<z@cc>"),
    ]
    async with router.runtime.engine.begin() as conn:
        changed = await apply_deliveries(conn, reports)
    assert changed == [True, True, True, True, False, False, False, False, True, False]
    items = {
        m["id"]: m
        for t in (first, second)
        for m in (await router.client.get(f"/v1/tickets/{t}/messages")).json()["items"]
    }
    assert (items[str(m1)]["delivery_state"], items[str(m1)]["provider_message_id"]) == (
        "delivered",
        "<a@cc>",
    )
    assert items[str(m1)]["delivery_reason"] is None
    assert (items[str(m2)]["delivery_state"], items[str(m2)]["delivery_reason"]) == (
        "failed",
        "550 mailbox unavailable",
    )
    assert items[str(m2)]["provider_message_id"] == "<b@cc>"
    keys = await router.sql("SELECT key, ticket_id FROM thread_keys WHERE key LIKE 'email:%@cc'")
    assert sorted((k.key, k.ticket_id) for k in keys) == sorted(
        [("email:a@cc", first), ("email:b@cc", second)]
    )
    (told,) = await notifications_of(router, as_agent("amy"))
    assert told["kind"] == "delivery_failed"
    assert told["data"]["message_id"] == str(m2)
    (untouched,) = await router.sql(
        "SELECT delivery_state FROM ticket_messages WHERE id = :m", m=m3
    )
    assert untouched.delivery_state == "sent"


async def test_a_failed_delivery_on_kafka_is_stored_and_tells_the_owner_and_strangers_are_ignored(
    kafka_bootstrap: str, fresh_database: str
) -> None:
    """The router's own consumer, on the real broker: intake's message.delivery_changed
    (`failed`, with the reason) reaches the reply, and its ticket's owner is told."""
    suffix = f".test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, prefix=TOPIC_PREFIX)
    await commit_group_at_end(
        kafka_bootstrap, f"router.deliveries{suffix}", [topic(INTAKE_DELIVERIES)]
    )
    app = create_app(
        RouterSettings(
            database_url=SecretStr(fresh_database),
            kafka_bootstrap=kafka_bootstrap,
            log_json=False,
            consumer_group_suffix=suffix,
            assign_in_background=False,
        )
    )
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://r", headers=as_supervisor()
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        router = Router(app, client)
        ticket_id = await held_ticket(router, "amy")
        message_id = await _reply(router, ticket_id)
        # Reports of messages that are no reply of this router's (the chaos benchmark's
        # stand-in replies, another deployment's), on a ticket of ours or not, come first: the
        # consumer ignores them and goes on.
        strangers = [
            _changed(uuid.uuid4(), t, state, reason="550 no", provider_message_id="<x@cc>")
            for t in (ticket_id, uuid.uuid4())
            for state in ("sent", "failed")
        ]
        mine = [
            _changed(message_id, ticket_id, state, reason=reason)
            for state, reason in (("sent", None), ("failed", "550 mailbox unavailable"))
        ]
        for changed in strangers + mine:
            event = new_event(changed, producer="intake")
            await producer.send_and_wait(
                topic(INTAKE_DELIVERIES),
                event.to_bytes(),
                key=event.key.encode(),
                headers=[("event_type", event.event_type.encode())],
            )

        async def failed() -> Any:
            items = (await client.get(f"/v1/tickets/{ticket_id}/messages")).json()["items"]
            return items[-1] if items[-1]["delivery_state"] == "failed" else None

        message = await wait_until(failed, timeout=60)
        assert message["delivery_reason"] == "550 mailbox unavailable"
        (told,) = await notifications_of(router, as_agent("amy"))
        assert told["kind"] == "delivery_failed"
        assert told["data"]["message_id"] == str(message_id)
        assert "550" in told["text"]
        assert len(await router.sql("SELECT id FROM ticket_messages")) == 1
        assert await router.sql("SELECT key FROM thread_keys WHERE key = 'email:x@cc'") == []
    finally:
        await producer.stop()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_a_supervisor_who_opted_in_also_gets_escalations_by_email(router: Router) -> None:
    await router.runtime.relay.stop()  # the events stay in the outbox, to be read
    await _queue(router, "escalations", supervisors=["lin", "mo"])
    settings = {"email": "lin@cc.example", "email_opt_in": True}
    refused = await router.client.put(
        "/v1/notification-settings", json=settings, headers=as_agent("amy")
    )
    assert refused.status_code == 403
    no_address = await router.client.put(
        "/v1/notification-settings", json={"email_opt_in": True}, headers=as_supervisor("lin")
    )
    assert no_address.status_code == 422
    assert no_address.json()["errors"][0]["field"] == "body.email"
    put = await router.client.put(
        "/v1/notification-settings", json=settings, headers=as_supervisor("lin")
    )
    assert put.status_code == 200, put.text
    mine = await router.client.get("/v1/notification-settings", headers=as_supervisor("lin"))
    assert mine.json() == settings
    others = await router.client.get("/v1/notification-settings", headers=as_supervisor("mo"))
    assert others.json() == {"email": None, "email_opt_in": False}

    ticket_id = await router.receive(contact(uuid.uuid4(), text_="help"))
    escalation = SlaEscalated(
        ticket_id=ticket_id,
        metric="resolution",
        level=1,
        actions=["move_to_escalation_queue", "notify_supervisor"],
        at=datetime.now(UTC),
    )
    await _deliver(router, apply_escalations, escalation)
    rows = await router.sql(
        "SELECT key, value FROM outbox WHERE event_type = 'notification.email_requested'"
    )
    (row,) = rows  # lin opted in, mo did not
    _, email = decode_event(row.value)
    assert row.key == "lin"
    assert email.to == "lin@cc.example"
    assert email.ticket_id == ticket_id
    assert "Escalation" in email.subject
