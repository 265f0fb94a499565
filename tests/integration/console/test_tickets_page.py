"""A ticket's page and the tickets list through the console, on the real router and SLA apps:
the API's 422 shown next to its field, another agent's ticket neither shown nor changed,
canned responses into the reply box, transfer / pending / reopen, the SLA's business-time
clocks for a supervisor, the routing trace, the customer card, and Chinese throughout."""

from __future__ import annotations

import uuid

import httpx

from tests.helpers import wait_until
from tests.integration.console.test_agent_workspace import (
    Stack,
    post_form,
    stack_fixture,  # noqa: F401
)
from tests.integration.router.conftest import contact


async def take(stack: Stack, client: httpx.AsyncClient, agent: str, text: str) -> str:
    """A new ticket, offered to `agent` and accepted by them through the console."""
    ticket_id = await stack.ticket(text)
    offer = await stack.offer_to(agent)
    accepted = await post_form(client, f"/agent/offers/{offer['id']}/accept")
    assert accepted.status_code == 303, accepted.text
    return ticket_id


async def test_the_apis_422_is_shown_next_to_the_field_and_the_typed_text_is_kept(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    ticket_id = await take(stack, amy, "amy", "请帮我查一下订单")

    blank = await post_form(amy, f"/tickets/{ticket_id}/reply", {"text": "   "})
    unknown = await post_form(amy, f"/tickets/{ticket_id}/notes", {"text": "请 @nobody 看一下"})
    no_code = await post_form(amy, f"/tickets/{ticket_id}/resolve", {"resolution_code": ""})

    assert blank.status_code == 422
    assert 'id="reply-text-error"' in blank.text
    assert 'aria-describedby="reply-text-error"' in blank.text
    assert unknown.status_code == 422
    assert 'id="note-text-error"' in unknown.text
    assert "nobody" in unknown.text.split('id="note-text-error"', 1)[1].split("</p>", 1)[0]
    assert "请 @nobody 看一下</textarea>" in unknown.text  # what was typed stays in the box
    assert no_code.status_code == 422
    assert 'id="resolve-resolution_code-error"' in no_code.text
    messages = await stack.messages(ticket_id)
    assert [m["direction"] for m in messages] == ["inbound"]
    assert (await stack.router.ticket(uuid.UUID(ticket_id)))["status"] == "in_progress"


async def test_an_agent_gets_a_404_and_none_of_the_text_of_another_agents_ticket(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    secret = "我的身份证号是 110101199003071234"
    ticket_id = await take(stack, amy, "amy", secret)
    bob = await stack.agent("bob")

    page = await bob.get(f"/tickets/{ticket_id}", headers={"Accept": "text/html"})
    listed = await bob.get("/tickets", params={"status": "in_progress"})
    reply = await post_form(bob, f"/tickets/{ticket_id}/reply", {"text": "hello"})
    note = await post_form(bob, f"/tickets/{ticket_id}/notes", {"text": "peek"})
    resolve = await post_form(bob, f"/tickets/{ticket_id}/resolve", {"resolution_code": "x"})
    canned = await bob.get(f"/tickets/{ticket_id}/canned-responses/{uuid.uuid4()}")

    for answer in (page, reply, note, resolve, canned):
        assert answer.status_code == 404, answer.text
        assert secret not in answer.text
        assert "110101199003071234" not in answer.text
    assert listed.status_code == 200
    assert ticket_id not in listed.text
    assert secret not in listed.text
    assert [m["direction"] for m in await stack.messages(ticket_id)] == ["inbound"]
    assert (await stack.router.ticket(uuid.UUID(ticket_id)))["status"] == "in_progress"


async def test_a_reply_without_the_csrf_token_is_refused_and_nothing_is_stored(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    ticket_id = await take(stack, amy, "amy", "退货怎么办理？")

    reply = await post_form(amy, f"/tickets/{ticket_id}/reply", {"text": "hi"}, csrf=False)
    forged = await post_form(
        amy, f"/tickets/{ticket_id}/resolve", {"resolution_code": "x", "csrf": "nope"}, csrf=False
    )

    assert reply.status_code == 403
    assert forged.status_code == 403
    assert [m["direction"] for m in await stack.messages(ticket_id)] == ["inbound"]
    assert (await stack.router.ticket(uuid.UUID(ticket_id)))["status"] == "in_progress"


async def test_no_session_sends_the_ticket_page_to_sign_in(stack: Stack) -> None:
    ticket_id = await stack.ticket()
    async with stack.console.client() as stranger:
        page = await stranger.get(f"/tickets/{ticket_id}", headers={"Accept": "text/html"})
        listed = await stranger.get("/tickets", headers={"Accept": "text/html"})
        reply = await stranger.post(f"/tickets/{ticket_id}/reply", data={"text": "x"})

    assert page.status_code == 303
    assert page.headers["location"] == f"/sign-in?next=%2Ftickets%2F{ticket_id}"
    assert listed.status_code == 303
    assert reply.status_code == 401
    assert [m["direction"] for m in await stack.messages(ticket_id)] == ["inbound"]


async def test_a_canned_response_is_filled_in_for_the_ticket_and_sent_with_its_id(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy")
    ticket_id = await take(stack, amy, "amy", "会员积分什么时候到账？")
    queue = (await stack.router.ticket(uuid.UUID(ticket_id)))["queue_id"]
    created = await stack.router.client.post(
        "/v1/canned-responses",
        json={
            "queue_id": queue,
            "language": "zh",
            "title": "积分到账",
            "body": "您好，工单 {ticket_number} 的积分将在 24 小时内到账。",
        },
    )
    assert created.status_code == 201, created.text
    canned_id = created.json()["id"]
    number = ticket_id.replace("-", "")[:8].upper()

    page = await amy.get(f"/tickets/{ticket_id}")
    filled = await amy.get(f"/tickets/{ticket_id}", params={"canned": canned_id})
    as_json = await amy.get(f"/tickets/{ticket_id}/canned-responses/{canned_id}")

    assert "积分到账" in page.text  # listed in the canned responses' select
    assert f"您好，工单 {number} 的积分将在 24 小时内到账。</textarea>" in filled.text
    assert f'value="{canned_id}"' in filled.text
    assert as_json.json()["text"] == f"您好，工单 {number} 的积分将在 24 小时内到账。"
    sent = await post_form(
        amy,
        f"/tickets/{ticket_id}/reply",
        {"text": as_json.json()["text"], "canned_response_id": canned_id},
    )
    assert sent.status_code == 303, sent.text
    outbound = [m for m in await stack.messages(ticket_id) if m["direction"] == "outbound"]
    assert outbound[0]["canned_response_id"] == canned_id


async def test_pending_transfer_and_reopen_go_through_the_router(stack: Stack) -> None:
    amy = await stack.agent("amy")
    ticket_id = await take(stack, amy, "amy", "发票抬头写错了")

    pending = await post_form(amy, f"/tickets/{ticket_id}/pending", {"reason": "等客户提供税号"})
    assert pending.status_code == 303, pending.text
    assert (await stack.router.ticket(uuid.UUID(ticket_id)))["status"] == "pending_customer"

    await post_form(amy, f"/tickets/{ticket_id}/resolve", {"resolution_code": "fixed"})
    reopened = await post_form(amy, f"/tickets/{ticket_id}/reopen", {"reason": "客户又来问"})
    assert reopened.status_code == 303, reopened.text
    reopened_ticket = await stack.router.ticket(uuid.UUID(ticket_id))
    assert reopened_ticket["status"] not in ("resolved", "closed")

    moved = await post_form(
        amy,
        f"/tickets/{ticket_id}/transfer",
        {"to_queue_id": "billing", "reason": "财务问题"},
    )
    assert moved.status_code == 303, moved.text
    ticket = await stack.router.ticket(uuid.UUID(ticket_id))
    assert ticket["queue_id"] == "billing"
    history = (await amy.get(f"/tickets/{ticket_id}")).text
    assert "等客户提供税号" in history
    assert "财务问题" in history


async def test_the_page_shows_why_this_agent_the_customer_card_and_history(stack: Stack) -> None:
    amy = await stack.agent("amy")
    customer = uuid.uuid4()
    first = contact(customer, channel="email", subject="上个月的订单有问题", text_="订单 88231")
    earlier = await _accepted(stack, amy, str(await stack.router.receive(first)))
    await post_form(amy, f"/tickets/{earlier}/resolve", {"resolution_code": "done"})
    second = contact(customer, channel="chat", text_="新的问题：退款进度")
    ticket_id = await _accepted(stack, amy, str(await stack.router.receive(second)))
    assert ticket_id != earlier

    page = await amy.get(f"/tickets/{ticket_id}", headers={"Accept-Language": "zh-CN,zh;q=0.9"})

    assert page.status_code == 200
    routing = page.text.split('id="routing"', 1)[1].split("</section>", 1)[0]
    assert "amy" in routing
    assert "被选中" in routing  # the chosen candidate, in Chinese
    card = page.text.split('id="customer"', 1)[1].split("</section>", 1)[0]
    assert f'href="/tickets/{earlier}"' in card  # the customer's other ticket
    assert "上个月的订单有问题" in card
    assert 'id="history"' in page.text
    assert "新的问题：退款进度" in page.text
    assert "回复客户" in page.text  # the page's own words in Chinese
    assert '<html lang="zh-CN">' in page.text


async def _accepted(stack: Stack, client: httpx.AsyncClient, ticket_id: str) -> str:
    async def offered() -> list[dict[str, object]]:
        await stack.router.assigner.tick()
        return [o for o in await stack.router.offers("amy") if o["ticket_id"] == ticket_id]

    offer = (await wait_until(offered, timeout=10))[0]
    accepted = await post_form(client, f"/agent/offers/{offer['id']}/accept")
    assert accepted.status_code == 303, accepted.text
    return ticket_id


async def test_a_supervisor_sees_the_sla_clocks_in_business_time_and_every_ticket(
    stack: Stack,
) -> None:
    ticket_id = await stack.ticket("网站登录不了，急！")
    sam = await stack.console.signed_in_client("sam", "supervisor")
    await wait_until(lambda: stack.sla.tracked(uuid.UUID(ticket_id)), timeout=90)

    page = await sam.get(f"/tickets/{ticket_id}")
    listed = await sam.get("/tickets")

    assert page.status_code == 200
    sla = page.text.split('id="sla"', 1)[1].split("</section>", 1)[0]
    assert 'class="sla-clock" data-remaining="' in sla
    assert "Business time left" in sla
    assert ticket_id in listed.text
    assert "网站登录不了，急！" in listed.text


async def test_an_agent_sees_the_sla_clocks_of_their_ticket_but_not_of_anothers(
    stack: Stack,
) -> None:
    """The SLA service answers supervisors only (it cannot tell who holds a ticket): the
    console reads a ticket's clocks for an agent only once the router has shown them that
    ticket, so amy sees hers in business time and bob, who may not read it, sees nothing."""
    amy = await stack.agent("amy")
    ticket_id = await take(stack, amy, "amy", "账户被锁定了")
    await wait_until(lambda: stack.sla.tracked(uuid.UUID(ticket_id)), timeout=90)
    bob = await stack.agent("bob")

    page = await amy.get(f"/tickets/{ticket_id}")
    other = await bob.get(f"/tickets/{ticket_id}")

    assert page.status_code == 200
    sla = page.text.split('id="sla"', 1)[1].split("</section>", 1)[0]
    assert 'class="sla-clock" data-remaining="' in sla
    assert "Business time left" in sla
    assert other.status_code == 404
    assert 'class="sla-clock"' not in other.text
    assert "账户被锁定了" not in other.text


async def test_a_supervisors_ticket_list_is_filtered_and_sorted_on_the_server(
    stack: Stack,
) -> None:
    await stack.ticket("Zebra crossing refund", channel="chat")
    await stack.ticket("Alpha account locked", channel="chat")
    await stack.ticket("Mail about invoices", channel="email", subject="Mail about invoices")
    sam = await stack.console.signed_in_client("sam", "supervisor")

    by_subject = (await sam.get("/tickets", params={"sort": "subject", "dir": "desc"})).text
    chats = (await sam.get("/tickets", params={"channel": "chat", "sort": "subject"})).text

    assert by_subject.index("Zebra crossing") < by_subject.index("Mail about")
    assert by_subject.index("Mail about") < by_subject.index("Alpha account")
    assert chats.index("Alpha account") < chats.index("Zebra crossing")
    assert "Mail about invoices" not in chats
    assert 'aria-sort="ascending"' in chats


async def test_a_ticket_waiting_in_my_queue_can_be_read_and_noted_but_not_answered(
    stack: Stack,
) -> None:
    amy = await stack.agent("amy", status="away")  # nothing offered: the ticket waits
    ticket_id = await stack.ticket("排队中的问题")

    page = await amy.get(f"/tickets/{ticket_id}")
    reply = await post_form(amy, f"/tickets/{ticket_id}/reply", {"text": "我来回答"})
    note = await post_form(amy, f"/tickets/{ticket_id}/notes", {"text": "我下班前看一下"})

    assert page.status_code == 200
    assert "排队中的问题" in page.text
    assert 'id="reply-form"' not in page.text  # only the assignee or owner replies
    assert 'id="note-form"' in page.text
    assert reply.status_code == 403
    assert 'id="reply-error"' in reply.text  # the router's refusal, shown on the page
    assert note.status_code == 303
    directions = [m["direction"] for m in await stack.messages(ticket_id)]
    assert directions == ["inbound", "note"]


async def test_a_supervisor_replies_in_an_agents_name(stack: Stack) -> None:
    amy = await stack.agent("amy")
    ticket_id = await take(stack, amy, "amy", "能帮我催一下吗")
    sam = await stack.console.signed_in_client("sam", "supervisor")

    page = await sam.get(f"/tickets/{ticket_id}")
    replied = await post_form(
        sam, f"/tickets/{ticket_id}/reply", {"text": "已为您加急处理。", "agent_id": "amy"}
    )

    assert 'id="reply-agent"' in page.text
    assert replied.status_code == 303, replied.text
    outbound = [m for m in await stack.messages(ticket_id) if m["direction"] == "outbound"]
    assert [m["text"] for m in outbound] == ["已为您加急处理。"]
