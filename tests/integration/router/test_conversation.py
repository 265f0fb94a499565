"""A ticket's conversation: replies stored and published for delivery (message.outbound after
ticket.replied, one transaction), notes with @mentions, canned responses, paging; who may do
each, and that a refusal stores nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ccshared.events import decode_event
from ccshared.events.payloads import MessageOutbound, TicketReplied
from tests.helpers import as_agent, as_supervisor
from tests.integration.router.conftest import Router, contact

ZH = "您好，退款已经处理，请查收。"
EN = "Hello, your refund has been processed."


async def held_ticket(
    router: Router, agent: str = "amy", *, channel: str = "email", **kwargs: Any
) -> uuid.UUID:
    """A ticket the agent holds (assignee and owner, in progress)."""
    await router.agent(agent, status="offline")
    ticket_id = await router.receive(contact(uuid.uuid4(), channel=channel, **kwargs))
    await router.sql(
        "UPDATE tickets SET status = 'in_progress', assignee_agent_id = :a, owner_agent_id = :a "
        "WHERE id = :t",
        a=agent,
        t=ticket_id,
    )
    return ticket_id


async def events_of(router: Router, ticket_id: uuid.UUID) -> list[tuple[str, Any]]:
    rows = await router.sql("SELECT value FROM outbox WHERE key = :t ORDER BY id", t=str(ticket_id))
    decoded = [decode_event(r.value) for r in rows]
    return [(envelope.event_type, payload) for envelope, payload in decoded]


async def stored_messages(router: Router, ticket_id: uuid.UUID | None = None) -> list[Any]:
    if ticket_id is None:
        return await router.sql("SELECT * FROM ticket_messages")
    return await router.sql("SELECT * FROM ticket_messages WHERE ticket_id = :t", t=ticket_id)


@pytest.fixture
async def quiet(router: Router) -> Router:
    """The router with its relay stopped: events stay in the outbox, to be read."""
    await router.runtime.relay.stop()
    return router


async def test_a_reply_is_stored_and_published_for_delivery_with_ticket_replied(
    quiet: Router,
) -> None:
    router = quiet
    ticket_id = await held_ticket(router, subject="退款 refund", text_="我的退款呢？")
    (last,) = await router.sql(
        "SELECT contact_id FROM ticket_contacts WHERE ticket_id = :t", t=ticket_id
    )
    for text in (ZH, EN):
        response = await router.client.post(
            f"/v1/tickets/{ticket_id}/reply", json={"text": text}, headers=as_agent("amy")
        )
        assert response.status_code == 200, response.text
    events = [
        (t, p)
        for t, p in await events_of(router, ticket_id)
        if t in ("ticket.replied", "message.outbound")
    ]
    assert [t for t, _ in events] == ["ticket.replied", "message.outbound"] * 2
    stored = {m.id: m for m in await stored_messages(router, ticket_id)}
    for (_, replied), (_, out), text in zip(events[::2], events[1::2], (ZH, EN), strict=True):
        assert isinstance(replied, TicketReplied)
        assert isinstance(out, MessageOutbound)
        assert replied.message_id == out.message_id
        assert out.text == text
        assert out.kind == "reply"
        assert out.channel == "email"
        assert out.author == "agent:amy"
        assert out.subject == "Re: 退款 refund"
        assert out.reply_to_contact_id == last.contact_id
        message = stored[out.message_id]
        assert (message.text, message.direction, message.delivery_state) == (
            text,
            "outbound",
            "queued",
        )
    assert [r.first_response for _, r in events[::2]] == [True, False]


async def test_the_conversation_pages_in_a_stable_order_with_an_opaque_cursor(
    router: Router,
) -> None:
    customer = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(minutes=30)
    await router.agent("amy", status="offline")
    ticket_id = await router.receive(
        contact(customer, channel="email", text_="第一封", at=start, subject="订单")
    )
    await router.sql(
        "UPDATE tickets SET status = 'in_progress', assignee_agent_id = 'amy', "
        "owner_agent_id = 'amy' WHERE id = :t",
        t=ticket_id,
    )
    await router.receive(
        contact(customer, channel="email", text_="second", at=start + timedelta(minutes=1))
    )
    amy = as_agent("amy")
    sent = []
    for i in range(3):
        r = await router.client.post(
            f"/v1/tickets/{ticket_id}/reply", json={"text": f"reply {i} 回复"}, headers=amy
        )
        assert r.status_code == 200, r.text
        n = await router.client.post(
            f"/v1/tickets/{ticket_id}/notes", json={"text": f"note {i}"}, headers=amy
        )
        assert n.status_code == 201, n.text
        sent += [f"reply {i} 回复", f"note {i}"]
    everything = (
        await router.client.get(f"/v1/tickets/{ticket_id}/messages", params={"limit": 500})
    ).json()
    assert everything["next_cursor"] is None
    items = everything["items"]
    assert [m["text"] for m in items] == ["第一封", "second", *sent]
    assert [m["direction"] for m in items[:3]] == ["inbound", "inbound", "outbound"]
    assert items[2]["delivery_state"] == "queued"
    assert items[3]["direction"] == "note"
    assert items[3]["delivery_state"] is None
    assert items[0]["author"] == "customer"
    assert items[2]["author"] == "agent:amy"
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await router.client.get(f"/v1/tickets/{ticket_id}/messages", params=params)).json()
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == items
    detail = await router.ticket(ticket_id)
    assert [m["text"] for m in detail["messages"]] == [m["text"] for m in items[-5:]]
    bad = await router.client.get(f"/v1/tickets/{ticket_id}/messages", params={"cursor": "nope"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.cursor"


async def test_a_reply_to_a_ticket_not_yours_is_refused_and_nothing_is_stored(
    quiet: Router,
) -> None:
    router = quiet
    ticket_id = await held_ticket(router, "amy")
    await router.agent("bob", status="offline")
    before = await events_of(router, ticket_id)
    refused = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply", json={"text": EN}, headers=as_agent("bob")
    )
    assert refused.status_code == 404  # bob may not even read it
    await router.sql(
        "UPDATE tickets SET status = 'queued', assignee_agent_id = NULL, owner_agent_id = NULL, "
        "queue_id = 'frontline' WHERE id = :t",
        t=ticket_id,
    )
    held = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply", json={"text": EN}, headers=as_agent("bob")
    )
    assert held.status_code == 403  # waiting in his queue: readable, not his to answer
    assert await stored_messages(router) == []
    assert await events_of(router, ticket_id) == before


async def test_blank_oversized_and_unknown_canned_replies_are_refused_naming_the_field(
    router_factory: Any,
) -> None:
    router: Router = await router_factory(message_max_bytes=30)
    ticket_id = await held_ticket(router)
    amy = as_agent("amy")
    path = f"/v1/tickets/{ticket_id}/reply"
    too_large = await router.client.post(path, json={"text": "退" * 11}, headers=amy)  # 33 bytes
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["errors"][0]["field"] == "body.text"
    for blank in ("", "  \n"):
        empty = await router.client.post(path, json={"text": blank}, headers=amy)
        assert empty.status_code == 422, empty.text
        assert empty.json()["errors"][0]["field"] == "body.text"
    unknown = await router.client.post(
        path, json={"text": "ok", "canned_response_id": str(uuid.uuid4())}, headers=amy
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["errors"][0]["field"] == "body.canned_response_id"
    note = await router.client.post(
        f"/v1/tickets/{ticket_id}/notes", json={"text": "x" * 31}, headers=amy
    )
    assert note.status_code == 413
    assert await stored_messages(router) == []
    fits = await router.client.post(path, json={"text": "退" * 10}, headers=amy)  # 30 bytes
    assert fits.status_code == 200, fits.text
    detail = await router.ticket(ticket_id)
    assert detail["first_response_at"] is not None


async def test_a_reply_on_the_phone_channel_is_a_call_back_request(quiet: Router) -> None:
    router = quiet
    ticket_id = await held_ticket(router, channel="phone", text_="请回电")
    r = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply", json={"text": "明天上午回电"}, headers=as_agent("amy")
    )
    assert r.status_code == 200, r.text
    (out,) = [p for t, p in await events_of(router, ticket_id) if t == "message.outbound"]
    assert out.kind == "callback_request"
    (message,) = await stored_messages(router, ticket_id)
    assert message.kind == "callback_request"


async def test_a_reply_outside_a_messaging_channels_window_is_refused_early(
    router: Router,
) -> None:
    old = datetime.now(UTC) - timedelta(hours=25)
    ticket_id = await held_ticket(router, channel="social", text_="hello?", at=old)
    refused = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply",
        json={"text": "sorry for the wait"},
        headers=as_agent("amy"),
    )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["type"].endswith("reply-window-closed")
    assert body["channel"] == "social"
    assert body["window_hours"] == 24
    assert "call-back" in body["detail"]
    assert await stored_messages(router) == []
    fresh = await held_ticket(router, channel="social", text_="hi")
    ok = await router.client.post(
        f"/v1/tickets/{fresh}/reply", json={"text": "hi!"}, headers=as_agent("amy")
    )
    assert ok.status_code == 200, ok.text


async def test_the_conversation_shows_a_contacts_sender_and_attachments(router: Router) -> None:
    payload = contact(uuid.uuid4(), channel="email", text_="see attached")
    payload = payload.model_copy(
        update={
            "channel_data": {
                "from": {"name": "Maria", "address": "maria@example.com"},
                "attachments": [
                    {"filename": "发票.pdf", "content_type": "application/pdf", "size_bytes": 2048}
                ],
            }
        }
    )
    ticket_id = await router.receive(payload)
    (message,) = (await router.client.get(f"/v1/tickets/{ticket_id}/messages")).json()["items"]
    assert message["sender"] == {"email": "maria@example.com"}
    assert message["attachments"] == [
        {"filename": "发票.pdf", "content_type": "application/pdf", "size_bytes": 2048}
    ]
    assert message["channel"] == "email"
    assert message["kind"] == "contact"


# --- notes ----------------------------------------------------------------------------------


async def test_a_note_is_never_published_and_its_mention_notifies_the_agent(quiet: Router) -> None:
    router = quiet
    ticket_id = await held_ticket(router, "amy")
    await router.agent("bob", status="offline")
    r = await router.client.post(
        f"/v1/tickets/{ticket_id}/notes",
        json={"text": "请@bob看一下 refund policy, thanks @amy."},
        headers=as_agent("amy"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["mentions"] == ["bob", "amy"]
    assert not [
        t
        for t, _ in await events_of(router, ticket_id)
        if t in ("message.outbound", "ticket.replied")
    ]
    bobs = (await router.client.get("/v1/notifications", headers=as_agent("bob"))).json()["items"]
    assert [(n["kind"], n["ticket_id"]) for n in bobs] == [("mention", str(ticket_id))]
    assert bobs[0]["data"]["author"] == "agent:amy"
    amys = (await router.client.get("/v1/notifications", headers=as_agent("amy"))).json()["items"]
    assert amys == []  # nobody is told of their own mention
    events = await router.sql(
        "SELECT key, event_type FROM outbox WHERE event_type = 'notification.created'"
    )
    assert [(e.key, e.event_type) for e in events] == [("bob", "notification.created")]


async def test_a_note_mentioning_no_agent_is_refused_naming_it_and_stores_nothing(
    router: Router,
) -> None:
    ticket_id = await held_ticket(router, "amy")
    r = await router.client.post(
        f"/v1/tickets/{ticket_id}/notes",
        json={"text": "@amy ask @ghost-7 about it"},
        headers=as_agent("amy"),
    )
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "body.text"
    assert "@ghost-7" in error["message"]
    assert await stored_messages(router) == []
    assert await router.sql("SELECT * FROM notifications") == []


async def test_notes_are_for_who_may_read_the_ticket(router: Router) -> None:
    ticket_id = await held_ticket(router, "amy")
    await router.agent("bob", status="offline")
    hidden = await router.client.post(
        f"/v1/tickets/{ticket_id}/notes", json={"text": "hi"}, headers=as_agent("bob")
    )
    assert hidden.status_code == 404
    sup = await router.client.post(
        f"/v1/tickets/{ticket_id}/notes", json={"text": "督导备注"}, headers=as_supervisor("lin")
    )
    assert sup.status_code == 201
    assert sup.json()["author"] == "supervisor:lin"
    # waiting in bob's queue: he may read it, so he may add a note (not reply)
    await router.sql(
        "UPDATE tickets SET status = 'queued', queue_id = 'frontline' WHERE id = :t", t=ticket_id
    )
    mine = await router.client.post(
        f"/v1/tickets/{ticket_id}/notes", json={"text": "I can take it"}, headers=as_agent("bob")
    )
    assert mine.status_code == 201, mine.text
    assert len(await stored_messages(router, ticket_id)) == 2


# --- canned responses -----------------------------------------------------------------------


async def test_supervisors_manage_canned_responses_and_agents_render_their_queues_ones(
    router: Router,
) -> None:
    await router.agent("amy", skills={"billing": 3}, status="offline")
    body = {
        "queue_id": "billing",
        "language": "zh",
        "title": "退款",
        "body": "{customer_name}您好，工单{ticket_number}已处理。{agent_name}",
    }
    refused = await router.client.post("/v1/canned-responses", json=body, headers=as_agent("amy"))
    assert refused.status_code == 403
    created = await router.client.post("/v1/canned-responses", json=body)
    assert created.status_code == 201, created.text
    canned = created.json()
    other = await router.client.post(
        "/v1/canned-responses", json={**body, "queue_id": "vip", "title": "VIP"}
    )
    assert other.status_code == 201
    bad = await router.client.post("/v1/canned-responses", json={**body, "body": "Hi {order_id}"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.body"
    nowhere = await router.client.post("/v1/canned-responses", json={**body, "queue_id": "nowhere"})
    assert nowhere.status_code == 422
    assert nowhere.json()["errors"][0]["field"] == "body.queue_id"
    listed = (await router.client.get("/v1/canned-responses", headers=as_agent("amy"))).json()
    assert [c["id"] for c in listed] == [canned["id"]]  # only her queues'
    assert len((await router.client.get("/v1/canned-responses")).json()) == 2

    customer = uuid.uuid4()
    payload = contact(customer, channel="email", text_="退款")
    payload = payload.model_copy(
        update={"customer": payload.customer.model_copy(update={"name": "王芳"})}
    )
    ticket_id = await router.receive(payload)
    await router.sql(
        "UPDATE tickets SET status = 'in_progress', assignee_agent_id = 'amy', "
        "owner_agent_id = 'amy' WHERE id = :t",
        t=ticket_id,
    )
    rendered = await router.client.post(
        f"/v1/tickets/{ticket_id}/canned-responses/{canned['id']}/render", headers=as_agent("amy")
    )
    assert rendered.status_code == 200, rendered.text
    number = ticket_id.hex[:8].upper()
    assert rendered.json()["text"] == f"王芳您好，工单{number}已处理。amy"
    not_hers = await router.client.post(
        f"/v1/tickets/{ticket_id}/canned-responses/{other.json()['id']}/render",
        headers=as_agent("amy"),
    )
    assert not_hers.status_code == 404
    reply = await router.client.post(
        f"/v1/tickets/{ticket_id}/reply",
        json={
            "text": rendered.json()["text"] + " 如有问题请回复。",
            "canned_response_id": canned["id"],
        },
        headers=as_agent("amy"),
    )
    assert reply.status_code == 200, reply.text
    (message,) = await stored_messages(router, ticket_id)
    assert str(message.canned_response_id) == canned["id"]

    changed = await router.client.put(
        f"/v1/canned-responses/{canned['id']}", json={**body, "title": "退款完成"}
    )
    assert changed.status_code == 200
    assert changed.json()["title"] == "退款完成"
    assert (
        await router.client.delete(f"/v1/canned-responses/{canned['id']}", headers=as_agent("amy"))
    ).status_code == 403
    assert (await router.client.delete(f"/v1/canned-responses/{canned['id']}")).status_code == 204
    assert (await router.client.delete(f"/v1/canned-responses/{canned['id']}")).status_code == 404
