"""What the UI's screens read in one call: ticket lists and an agent's offers carry each
ticket's summary (channel, subject line, priority, customer name, waiting since, next SLA
deadline), only of tickets the caller may read; replies in the token's name; resolve
deciding first-contact resolution when not told."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ccshared.events.payloads import ContactReceived, CustomerHints
from tests.helpers import as_agent
from tests.integration.router.conftest import Router, contact, eventually


def named(payload: ContactReceived, name: str | None) -> ContactReceived:
    return payload.model_copy(update={"customer": CustomerHints(name=name)})


async def _offers_of(router: Router, agent: str) -> list[dict[str, Any]]:
    async def pending() -> list[dict[str, Any]]:
        await router.assigner.tick()
        response = await router.client.get(f"/v1/agents/{agent}/offers", headers=as_agent(agent))
        assert response.status_code == 200, response.text
        offers: list[dict[str, Any]] = response.json()
        return offers

    found: list[dict[str, Any]] = await eventually(pending)
    return found


async def test_ticket_list_items_carry_the_summary_of_their_first_contact(router: Router) -> None:
    customer = uuid.uuid4()
    ticket_id = await router.receive(
        named(
            contact(
                customer,
                channel="email",
                subject="Refund for order 88231",
                text_="Hello,\nI returned the jacket two weeks ago.",
            ),
            "Maria Lopez",
        )
    )
    deadline = datetime.now(UTC) + timedelta(minutes=30)
    await router.sql("UPDATE tickets SET sla_deadline = :d WHERE id = :t", d=deadline, t=ticket_id)
    response = await router.client.get("/v1/tickets", params={"customer_id": str(customer)})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    stored = (await router.sql("SELECT queued_at FROM tickets WHERE id = :t", t=ticket_id))[0]
    summary = item["summary"]
    assert summary["channel"] == "email"
    assert summary["subject"] == "Refund for order 88231"
    assert summary["priority"] == item["priority"]
    assert summary["customer_name"] == "Maria Lopez"
    assert datetime.fromisoformat(summary["waiting_since"]) == stored.queued_at
    assert datetime.fromisoformat(summary["sla_deadline"]) == deadline


async def test_without_subject_the_first_line_cut_to_140_is_the_summary_and_a_later_name_fills_in(
    router: Router,
) -> None:
    customer = uuid.uuid4()
    session = {"chat_session_id": f"s-{customer}"}
    long_line = "我的账号登录不上了，一直提示密码错误" * 20
    ticket_id = await router.receive(
        named(contact(customer, text_=f"\n{long_line}\n第二行", thread=session), None)
    )
    assert await router.receive(named(contact(customer, text_="在吗", thread=session), "李伟")) == (
        ticket_id
    )
    summary = (await router.ticket(ticket_id))["summary"]
    assert summary["subject"] == long_line[:139] + "…"
    assert summary["customer_name"] == "李伟"  # the first contact gave none, the second did


async def test_an_agents_offers_carry_the_summary_and_another_agent_cannot_list_them(
    router: Router,
) -> None:
    await router.agent("amy", skills={"complaints": 3})
    await router.agent("bob", skills={"complaints": 3}, status="offline")
    ticket_id = await router.receive(
        named(contact(uuid.uuid4(), channel="phone", text_="洗衣机一直漏水，我要投诉！"), "王芳")
    )
    [offer] = await _offers_of(router, "amy")
    assert offer["ticket_id"] == str(ticket_id)
    assert offer["status"] == "pending"
    assert offer["summary"]["channel"] == "phone"
    assert offer["summary"]["subject"] == "洗衣机一直漏水，我要投诉！"
    assert offer["summary"]["customer_name"] == "王芳"
    assert offer["summary"]["priority"] in {"high", "urgent", "normal", "low"}
    assert offer["summary"]["waiting_since"] is not None
    refused = await router.client.get("/v1/agents/amy/offers", headers=as_agent("bob"))
    assert refused.status_code == 403
    assert "summary" not in refused.text


async def test_an_agents_ticket_list_holds_summaries_only_of_tickets_they_may_read(
    router: Router,
) -> None:
    await router.agent("cara", skills={"billing": 2}, status="offline")
    complaint = await router.receive(
        named(contact(uuid.uuid4(), text_="我要投诉！服务太差"), "Secret Name")
    )
    bill = await router.receive(named(contact(uuid.uuid4(), text_="发票开错了"), "Li Na"))
    response = await router.client.get("/v1/tickets", headers=as_agent("cara"))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["id"] for i in items] == [str(bill)]
    assert items[0]["summary"]["customer_name"] == "Li Na"
    assert "Secret Name" not in response.text
    hidden = await router.client.get(f"/v1/tickets/{complaint}", headers=as_agent("cara"))
    assert hidden.status_code == 404
    assert "Secret Name" not in hidden.text


async def test_an_agent_replies_without_naming_themself_and_resolve_decides_first_contact(
    router: Router,
) -> None:
    await router.agent("dan", skills={"complaints": 3})
    once = await router.receive(contact(uuid.uuid4(), channel="phone", text_="我要投诉！"))
    [offer] = await _offers_of(router, "dan")
    assert offer["ticket_id"] == str(once)
    reply = await router.client.post(
        f"/v1/tickets/{once}/reply", json={"text": "on it"}, headers=as_agent("dan")
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["owner_agent_id"] == "dan"  # answering the offer took it
    resolved = await router.client.post(
        f"/v1/tickets/{once}/resolve", json={"resolution_code": "answered"}, headers=as_agent("dan")
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["first_contact_resolution"] is True

    # A customer who had to write twice was not served on first contact.
    customer = uuid.uuid4()
    session = {"chat_session_id": f"s-{customer}"}
    twice = await router.receive(contact(customer, text_="我要投诉！", thread=session))
    await router.receive(contact(customer, text_="还在吗？我要投诉！", thread=session))
    await _offers_of(router, "dan")
    await router.client.post(f"/v1/tickets/{twice}/reply", json={}, headers=as_agent("dan"))
    resolved = await router.client.post(
        f"/v1/tickets/{twice}/resolve",
        json={"resolution_code": "answered"},
        headers=as_agent("dan"),
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["first_contact_resolution"] is False


async def test_a_supervisor_reply_without_agent_id_is_a_422_naming_the_field(
    router: Router,
) -> None:
    await router.agent("eve", skills={"complaints": 3})
    ticket_id = await router.receive(contact(uuid.uuid4(), channel="phone", text_="我要投诉！"))
    await _offers_of(router, "eve")
    response = await router.client.post(f"/v1/tickets/{ticket_id}/reply", json={})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.agent_id"
    assert (await router.ticket(ticket_id))["first_response_at"] is None
